//! Signatures for the commits and tags commit-back writes, made in-process as
//! git makes them with `ssh-keygen` or `gpg` (the image has neither).
//!
//! Owns: reading a private key (OpenSSH or ASCII-armored OpenPGP) into a
//! [`Signer`], unlocking it with its passphrase, and turning a payload (a
//! commit or tag buffer) into the armored signature git stores.
//! SSH: SSHSIG, namespace `git`, SHA-512, as `ssh-keygen -Y sign -n git`
//! (what `git -c gpg.format=ssh commit -S` runs). OpenPGP: a v4 detached
//! binary-document signature with rPGP's hash for the key's algorithm
//! (SHA-256 for RSA and ed25519, gpg's default too), armored, as
//! `gpg --detach-sign --armor` (what `git commit -S` runs), by the newest
//! signing-capable subkey, else the primary key (gpg's choice too).
//!
//! Must never: put key material or a passphrase into an error, a log line or
//! `Debug` output (a [`Signer`] shows its algorithm and fingerprint only), or
//! touch the repository (git/ asks through [`crate::git::Sign`]).

use anyhow::{Context as _, Result};
use pgp::composed::{Deserializable as _, DetachedSignature, SignedSecretKey};
use pgp::types::{KeyDetails as _, Password};

/// The namespace git signs in (`ssh-keygen -Y sign -n git`).
const SSH_NAMESPACE: &str = "git";

pub use crate::report::SignatureFormat;

/// Why a key cannot sign: about the key itself, or about its passphrase
/// (each is reported under its own variable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyProblem {
    Key(String),
    Passphrase(String),
}

/// A private key ready to sign. Built once per run, at configuration time,
/// so a wrong passphrase or an unusable key stops the run before anything
/// is written.
pub struct Signer {
    key: Key,
    /// `SHA256:…` for SSH (as `ssh-keygen -l` prints it), the signing key's
    /// 40-hex fingerprint for OpenPGP (as `gpg --fingerprint` prints it).
    fingerprint: String,
    /// `ssh-ed25519`, `ecdsa-sha2-nistp256`, `rsa-sha2-512`; `ed25519`,
    /// `rsa`, `ecdsa` for OpenPGP.
    algorithm: String,
}

enum Key {
    Ssh(Box<ssh_key::PrivateKey>),
    Openpgp {
        key: Box<SignedSecretKey>,
        /// The signing subkey, else None for the primary key.
        subkey: Option<usize>,
        passphrase: Password,
    },
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Signer({:?}, {}, {})",
            self.format(),
            self.algorithm,
            self.fingerprint
        )
    }
}

impl Signer {
    /// Reads `text` (a PEM or armored block) and proves it can sign by
    /// signing an empty payload: a wrong passphrase shows here.
    pub fn from_private_key(text: &str, passphrase: Option<&str>) -> Result<Signer, KeyProblem> {
        let trimmed = text.trim();
        let signer = if trimmed.contains("-----BEGIN OPENSSH PRIVATE KEY-----") {
            ssh(trimmed, passphrase)?
        } else if trimmed.contains("-----BEGIN PGP PRIVATE KEY BLOCK-----") {
            openpgp(trimmed, passphrase)?
        } else {
            return Err(KeyProblem::Key(not_a_private_key(trimmed)));
        };
        signer.sign(b"").map_err(|_| {
            KeyProblem::Key(match signer.format() {
                SignatureFormat::Ssh => format!(
                    "is a {} key that cannot make a signature here; use an ed25519 key (`ssh-keygen -t ed25519`)",
                    signer.algorithm
                ),
                SignatureFormat::Openpgp => format!(
                    "is an OpenPGP {} key that cannot make a signature here; use an ed25519 or rsa signing key (`gpg --quick-gen-key … ed25519 sign`)",
                    signer.algorithm
                ),
            })
        })?;
        Ok(signer)
    }

    pub fn format(&self) -> SignatureFormat {
        match self.key {
            Key::Ssh(_) => SignatureFormat::Ssh,
            Key::Openpgp { .. } => SignatureFormat::Openpgp,
        }
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn algorithm(&self) -> &str {
        &self.algorithm
    }

    /// `SSH key ssh-ed25519 SHA256:…` / `OpenPGP key ed25519 0123…`: what
    /// the log says signed.
    pub fn describe(&self) -> String {
        let kind = match self.format() {
            SignatureFormat::Ssh => "SSH",
            SignatureFormat::Openpgp => "OpenPGP",
        };
        format!("{kind} key {} {}", self.algorithm, self.fingerprint)
    }

    /// The armored signature of `payload`, ending in a newline, as
    /// `ssh-keygen -Y sign` / `gpg -bsa` print it.
    pub fn sign(&self, payload: &[u8]) -> Result<String> {
        match &self.key {
            Key::Ssh(key) => {
                let signature = match key.key_data().rsa() {
                    Some(pair) => rsa_sshsig(key, pair, payload),
                    None => key.sign(SSH_NAMESPACE, ssh_key::HashAlg::Sha512, payload),
                };
                signature
                    .context("making the SSH signature")?
                    .to_pem(ssh_key::LineEnding::LF)
                    .context("armoring the SSH signature")
            }
            Key::Openpgp {
                key,
                subkey,
                passphrase,
            } => {
                let signature = match subkey {
                    Some(i) => {
                        let sub = &key.secret_subkeys[*i].key;
                        detached(sub, passphrase, payload)
                    }
                    None => detached(&key.primary_key, passphrase, payload),
                }
                .context("making the OpenPGP signature")?;
                signature
                    .to_armored_string(Default::default())
                    .context("armoring the OpenPGP signature")
            }
        }
    }
}

impl crate::git::Sign for Signer {
    fn sign(&self, payload: &[u8]) -> Result<String> {
        Signer::sign(self, payload)
    }
}

/// SSHSIG by an RSA key, as `ssh-keygen -Y sign` makes it (rsa-sha2-512,
/// PKCS#1 v1.5 over the SSHSIG blob). ssh-key's own RSA path rebuilds the
/// key from the wrong primes (0.6.7: `p` twice), which rsa 0.9.10 refuses.
fn rsa_sshsig(
    key: &ssh_key::PrivateKey,
    pair: &ssh_key::private::RsaKeypair,
    payload: &[u8],
) -> ssh_key::Result<ssh_key::SshSig> {
    use rsa::signature::{SignatureEncoding as _, Signer as _};
    let big = |m: &ssh_key::Mpint| {
        m.as_positive_bytes()
            .map(rsa::BigUint::from_bytes_be)
            .ok_or(ssh_key::Error::Crypto)
    };
    let private = rsa::RsaPrivateKey::from_components(
        big(&pair.public.n)?,
        big(&pair.public.e)?,
        big(&pair.private.d)?,
        vec![big(&pair.private.p)?, big(&pair.private.q)?],
    )
    .map_err(|_| ssh_key::Error::Crypto)?;
    let hash = ssh_key::HashAlg::Sha512;
    let signed = ssh_key::SshSig::signed_data(SSH_NAMESPACE, hash, payload)?;
    let raw = rsa::pkcs1v15::SigningKey::<sha2::Sha512>::new(private)
        .try_sign(&signed)
        .map_err(|_| ssh_key::Error::Crypto)?;
    let signature =
        ssh_key::Signature::new(ssh_key::Algorithm::Rsa { hash: Some(hash) }, raw.to_vec())?;
    ssh_key::SshSig::new(
        key.public_key().key_data().clone(),
        SSH_NAMESPACE,
        hash,
        signature,
    )
}

fn detached(
    key: &impl pgp::types::SigningKey,
    passphrase: &Password,
    payload: &[u8],
) -> pgp::errors::Result<DetachedSignature> {
    DetachedSignature::sign_binary_data(
        rand::thread_rng(),
        key,
        passphrase,
        key.hash_alg(),
        payload,
    )
}

fn ssh(text: &str, passphrase: Option<&str>) -> Result<Signer, KeyProblem> {
    let unreadable = || {
        KeyProblem::Key(
            "is not a readable OpenSSH private key (damaged or cut short?); encode the whole file, `base64 -w 0 < id_ed25519`".into(),
        )
    };
    let wrong_passphrase = || {
        KeyProblem::Passphrase(
            "does not unlock the key (wrong passphrase); set the passphrase the key was created with".into(),
        )
    };
    let key = match ssh_key::PrivateKey::from_openssh(text) {
        Ok(key) => key,
        // A short ECDSA scalar (see `full_width_scalar`), unencrypted.
        Err(_) => openssh::reread(text, None).ok_or_else(unreadable)?,
    };
    let key = if key.is_encrypted() {
        let Some(passphrase) = passphrase else {
            return Err(KeyProblem::Passphrase(
                "is not set, but the key is protected by a passphrase; set SIGNING_KEY_PASSPHRASE as a secured variable (or remove the passphrase: `ssh-keygen -p -N '' -f key`)".into(),
            ));
        };
        match key.decrypt(passphrase) {
            Ok(key) => key,
            Err(ssh_key::Error::Crypto) => return Err(wrong_passphrase()),
            Err(_) => {
                openssh::reread(text, Some((&key, passphrase))).ok_or_else(wrong_passphrase)?
            }
        }
    } else {
        key
    };
    let algorithm = match key.algorithm() {
        // ssh-keygen signs with RSA as rsa-sha2-512; so does ssh-key.
        ssh_key::Algorithm::Rsa { .. } => "rsa-sha2-512".to_owned(),
        ssh_key::Algorithm::Ed25519 | ssh_key::Algorithm::Ecdsa { .. } => {
            key.algorithm().as_str().to_owned()
        }
        other => {
            return Err(KeyProblem::Key(format!(
                "is a {} key, which commit-back cannot sign with; use an ed25519, ecdsa or rsa key",
                other.as_str()
            )));
        }
    };
    Ok(Signer {
        fingerprint: key.fingerprint(ssh_key::HashAlg::Sha256).to_string(),
        algorithm,
        key: Key::Ssh(Box::new(key)),
    })
}

/// ssh-key 0.6.7 reads an ECDSA private scalar only at its full width (32,
/// 48 or 66 bytes), but OpenSSH writes it as a minimal mpint: one P-521 key
/// in two has a shorter one, one P-256 key in 256. Such a key is read again
/// here with the scalar widened: the openssh-key-v1 container is taken apart
/// (PROTOCOL.key), its private section decrypted with ssh-key's own KDF and
/// cipher when it is encrypted, and put back together unencrypted, in memory.
mod openssh {
    use base64::Engine as _;

    const MAGIC: &[u8] = b"openssh-key-v1\0";

    pub(super) fn reread(
        text: &str,
        encrypted: Option<(&ssh_key::PrivateKey, &str)>,
    ) -> Option<ssh_key::PrivateKey> {
        let body: String = text
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::trim)
            .collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body)
            .ok()?;
        let mut r = Reader(bytes.strip_prefix(MAGIC)?);
        let (_cipher, _kdf, _kdf_options) = (r.string()?, r.string()?, r.string()?);
        if r.u32()? != 1 {
            return None;
        }
        let public = r.string()?.to_vec();
        let mut private = r.string()?.to_vec();
        if let Some((key, passphrase)) = encrypted {
            let (k, iv) = key.kdf().derive_key_and_iv(key.cipher(), passphrase).ok()?;
            // AEAD ciphers (aes256-gcm, chacha20-poly1305) put their tag
            // right after the private section.
            let tag = match key.cipher().has_tag() {
                true => Some(<[u8; 16]>::try_from(r.0.get(..16)?).ok()?),
                false => None,
            };
            key.cipher().decrypt(&k, &iv, &mut private, tag).ok()?;
        }
        let private = full_width_scalar(&private)?;
        let mut out = MAGIC.to_vec();
        for s in [&b"none"[..], b"none", b""] {
            put_string(&mut out, s);
        }
        out.extend(1u32.to_be_bytes());
        put_string(&mut out, &public);
        put_string(&mut out, &private);
        // Wrapped at 70 columns, as OpenSSH writes it (and ssh-key expects).
        let encoded = base64::engine::general_purpose::STANDARD.encode(out);
        let lines: Vec<&str> = encoded
            .as_bytes()
            .chunks(70)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        let pem = format!(
            "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
            lines.join("\n")
        );
        ssh_key::PrivateKey::from_openssh(pem).ok()
    }

    /// The private section with an ECDSA scalar at its curve's full width
    /// and the padding recomputed; None for a wrong passphrase (the two
    /// check numbers differ) or another key type.
    fn full_width_scalar(section: &[u8]) -> Option<Vec<u8>> {
        let mut r = Reader(section);
        let (check1, check2) = (r.u32()?, r.u32()?);
        if check1 != check2 {
            return None;
        }
        let kind = r.string()?;
        let width = match kind {
            b"ecdsa-sha2-nistp256" => 32,
            b"ecdsa-sha2-nistp384" => 48,
            b"ecdsa-sha2-nistp521" => 66,
            _ => return None,
        };
        let (curve, point, scalar, comment) = (r.string()?, r.string()?, r.string()?, r.string()?);
        let digits: Vec<u8> = scalar.iter().copied().skip_while(|b| *b == 0).collect();
        if digits.len() > width {
            return None;
        }
        let mut widened = vec![0u8; width - digits.len()];
        widened.extend(digits);
        let mut out = Vec::new();
        out.extend(check1.to_be_bytes());
        out.extend(check2.to_be_bytes());
        for s in [kind, curve, point, &widened, comment] {
            put_string(&mut out, s);
        }
        let mut pad = 1u8;
        while out.len() % 8 != 0 {
            out.push(pad);
            pad += 1;
        }
        Some(out)
    }

    fn put_string(out: &mut Vec<u8>, s: &[u8]) {
        out.extend((s.len() as u32).to_be_bytes());
        out.extend(s);
    }

    struct Reader<'a>(&'a [u8]);

    impl<'a> Reader<'a> {
        fn u32(&mut self) -> Option<u32> {
            let (head, rest) = self.0.split_first_chunk::<4>()?;
            self.0 = rest;
            Some(u32::from_be_bytes(*head))
        }

        fn string(&mut self) -> Option<&'a [u8]> {
            let len = self.u32()? as usize;
            let (s, rest) = (self.0.get(..len)?, self.0.get(len..)?);
            self.0 = rest;
            Some(s)
        }
    }
}

fn openpgp(text: &str, passphrase: Option<&str>) -> Result<Signer, KeyProblem> {
    let (key, _) = SignedSecretKey::from_string(text).map_err(|_| {
        KeyProblem::Key(
            "is not a readable OpenPGP secret key (damaged or cut short?); export it with `gpg --armor --export-secret-keys KEYID | base64 -w 0`".into(),
        )
    })?;
    // gpg signs with the newest subkey that may sign (bound for signing by
    // its newest binding, not revoked, not expired), else the primary key.
    let now = u64::from(pgp::types::Timestamp::now().as_secs());
    let subkey = key
        .secret_subkeys
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            use pgp::packet::SignatureType as T;
            let newest = |typ: T| {
                s.signatures
                    .iter()
                    .filter(|sig| sig.typ() == Some(typ))
                    .max_by_key(|sig| sig.created().map(|t| t.as_secs()))
            };
            let revoked = newest(T::SubkeyRevocation).is_some();
            newest(T::SubkeyBinding).is_some_and(|b| {
                b.key_flags().sign() && !expired(u64::from(s.key.created_at().as_secs()), b, now)
            }) && !revoked
        })
        .max_by_key(|(_, s)| s.key.created_at())
        .map(|(i, _)| i);
    if subkey.is_none() && !primary_may_sign(&key) {
        return Err(KeyProblem::Key(
            "holds no key that may sign (the primary key is not marked for signing, and no valid subkey is); export a key that has the S capability (`gpg -K` shows [S] or [SC])".into(),
        ));
    }
    let (encrypted, fingerprint, algorithm) = match subkey {
        Some(i) => {
            let sub = &key.secret_subkeys[i].key;
            (
                sub.secret_params().is_encrypted(),
                sub.fingerprint(),
                sub.algorithm(),
            )
        }
        None => (
            key.primary_key.secret_params().is_encrypted(),
            key.primary_key.fingerprint(),
            key.primary_key.algorithm(),
        ),
    };
    use pgp::crypto::public_key::PublicKeyAlgorithm as A;
    let algorithm = match algorithm {
        A::RSA | A::RSASign => "rsa".to_owned(),
        A::EdDSALegacy | A::Ed25519 => "ed25519".to_owned(),
        A::Ed448 => "ed448".to_owned(),
        A::ECDSA => "ecdsa".to_owned(),
        A::DSA => "dsa".to_owned(),
        other => {
            return Err(KeyProblem::Key(format!(
                "holds no key that can sign (its primary key is {other:?}, and no subkey is marked for signing); export a key that has the S capability (`gpg -K` shows [S])"
            )));
        }
    };
    let passphrase = match (encrypted, passphrase) {
        (false, _) => Password::empty(),
        (true, Some(p)) => Password::from(p),
        (true, None) => {
            return Err(KeyProblem::Passphrase(
                "is not set, but the key is protected by a passphrase; set SIGNING_KEY_PASSPHRASE as a secured variable".into(),
            ));
        }
    };
    let signer = Signer {
        fingerprint: format!("{fingerprint:X}"),
        algorithm,
        key: Key::Openpgp {
            key: Box::new(key),
            subkey,
            passphrase,
        },
    };
    if encrypted && signer.sign(b"").is_err() {
        return Err(KeyProblem::Passphrase(
            "does not unlock the key (wrong passphrase); set the passphrase the key was exported with".into(),
        ));
    }
    Ok(signer)
}

/// Whether a component created at `created` has expired by `now`, by the
/// key expiration time of `binding` (none, or zero: never).
fn expired(created: u64, binding: &pgp::packet::Signature, now: u64) -> bool {
    binding
        .key_expiration_time()
        .map(|d| u64::from(d.as_secs()))
        .filter(|secs| *secs > 0)
        .is_some_and(|secs| created + secs <= now)
}

/// The primary key may sign when its newest self-signature says so, or
/// says nothing about key usage (keys older than key flags).
fn primary_may_sign(key: &SignedSecretKey) -> bool {
    let primary = key.primary_key.fingerprint();
    let own = |sig: &&pgp::packet::Signature| sig.issuer_fingerprint().contains(&&primary);
    let newest = key
        .details
        .users
        .iter()
        .flat_map(|u| u.signatures.iter())
        .chain(key.details.direct_signatures.iter())
        .filter(own)
        .max_by_key(|sig| sig.created().map(|t| t.as_secs()));
    match newest {
        None => true,
        Some(sig) => {
            let flags = sig.key_flags();
            flags.sign()
                || !(flags.certify()
                    || flags.encrypt_comms()
                    || flags.encrypt_storage()
                    || flags.authentication())
        }
    }
}

/// What the text is instead of a private key, in one sentence (never the
/// text itself).
fn not_a_private_key(text: &str) -> String {
    const EXPORT: &str = "give the private key, base64-encoded: `base64 -w 0 < id_ed25519` (SSH) or `gpg --armor --export-secret-keys KEYID | base64 -w 0` (OpenPGP)";
    let first = text.lines().next().unwrap_or_default().trim();
    if first.contains("PGP PUBLIC KEY BLOCK") {
        format!("is an OpenPGP public key; {EXPORT}")
    } else if first.starts_with("ssh-")
        || first.starts_with("ecdsa-sha2-")
        || first.starts_with("sk-")
        || first.contains("SSH2 PUBLIC KEY")
    {
        format!("is an SSH public key (the .pub file); {EXPORT}")
    } else if first.starts_with("-----BEGIN") && first.contains("PRIVATE KEY") {
        "is a PEM private key, not in the OpenSSH format signing reads; convert a copy with `ssh-keygen -p -N '' -f copy_of_key` (it rewrites the file in the OpenSSH format)".to_owned()
    } else {
        format!("is not a private key; {EXPORT}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_not_a_private_key_is_named_without_echoing_it() {
        let cases = [
            ("ssh-ed25519 AAAAC3Nza secretish comment", "SSH public key"),
            (
                "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQINBGV\n-----END PGP PUBLIC KEY BLOCK-----",
                "OpenPGP public key",
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIB\n-----END RSA PRIVATE KEY-----",
                "PEM private key",
            ),
            ("hello world", "is not a private key"),
        ];
        for (text, said) in cases {
            let Err(KeyProblem::Key(why)) = Signer::from_private_key(text, None) else {
                panic!("{text} was accepted");
            };
            assert!(why.contains(said), "{text}: {why}");
            for word in text.split_whitespace().filter(|w| w.len() > 5) {
                if !word.starts_with("-----") && !word.contains("KEY") {
                    assert!(!why.contains(word), "{why} repeats {word}");
                }
            }
        }
    }

    #[test]
    fn a_damaged_openssh_key_is_refused() {
        let text = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
        assert!(matches!(
            Signer::from_private_key(text, None),
            Err(KeyProblem::Key(why)) if why.contains("not a readable OpenSSH private key")
        ));
    }
}
