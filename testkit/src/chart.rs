//! The benchmark's chart: small multiples on log-log axes (wall time and
//! peak memory, against the number of files and against file size), one
//! line per tool, as a standalone SVG written by the benchmark itself
//! (BENCHMARKS.md shows it). Plain SVG text: no fonts to measure, nothing
//! in the shipped binary.

/// One line of points (x, y), both > 0.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

const PANEL_W: f64 = 420.0;
const PANEL_H: f64 = 300.0;
const MARGIN_L: f64 = 70.0;
const MARGIN_R: f64 = 20.0;
const MARGIN_T: f64 = 40.0;
const MARGIN_B: f64 = 50.0;
/// One colour per series, in order (commit-back, git, …).
const COLOURS: [&str; 4] = ["#0052cc", "#de350b", "#00875a", "#6554c0"];

/// The panels in rows of `columns`, with a legend of every series name at
/// the top (a name has one colour in every panel).
pub fn svg(title: &str, panels: &[Panel], columns: usize) -> String {
    let columns = columns.max(1);
    let rows = panels.len().div_ceil(columns).max(1);
    let width = PANEL_W * columns as f64;
    let height = PANEL_H * rows as f64 + 50.0;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        width / 2.0,
        escape(title)
    );
    let mut names: Vec<&str> = Vec::new();
    for s in panels.iter().flat_map(|p| &p.series) {
        if !names.contains(&s.name.as_str()) {
            names.push(&s.name);
        }
    }
    let mut x = 20.0;
    for (i, name) in names.iter().enumerate() {
        out.push_str(&format!(
            "<line x1=\"{x}\" y1=\"38\" x2=\"{}\" y2=\"38\" stroke=\"{}\" stroke-width=\"2.5\"/><text x=\"{}\" y=\"42\">{}</text>\n",
            x + 24.0,
            COLOURS[i % COLOURS.len()],
            x + 30.0,
            escape(name)
        ));
        x += 40.0 + 7.0 * name.len() as f64;
    }
    for (i, panel) in panels.iter().enumerate() {
        let ox = PANEL_W * (i % columns) as f64;
        let oy = 50.0 + PANEL_H * (i / columns) as f64;
        out.push_str(&panel_svg(panel, ox, oy, &names));
    }
    out.push_str("</svg>\n");
    out
}

/// Decades covering `values` (at least one).
fn decades(values: impl Iterator<Item = f64>) -> (i32, i32) {
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    for v in values.filter(|v| *v > 0.0) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        return (0, 1);
    }
    let (a, b) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    (a, b.max(a + 1))
}

fn panel_svg(panel: &Panel, ox: f64, oy: f64, names: &[&str]) -> String {
    let points = || panel.series.iter().flat_map(|s| s.points.iter());
    let (x0, x1) = decades(points().map(|p| p.0));
    let (y0, y1) = decades(points().map(|p| p.1));
    let (left, top) = (ox + MARGIN_L, oy + MARGIN_T);
    let (w, h) = (PANEL_W - MARGIN_L - MARGIN_R, PANEL_H - MARGIN_T - MARGIN_B);
    let px = |x: f64| left + (x.log10() - x0 as f64) / (x1 - x0) as f64 * w;
    let py = |y: f64| top + h - (y.log10() - y0 as f64) / (y1 - y0) as f64 * h;
    let mut out = format!(
        "<g>\n<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"13\">{}</text>\n<rect x=\"{left}\" y=\"{top}\" width=\"{w}\" height=\"{h}\" fill=\"none\" stroke=\"#888\"/>\n",
        left + w / 2.0,
        top - 10.0,
        escape(&panel.title)
    );
    for d in x0..=x1 {
        let x = px(10f64.powi(d));
        out.push_str(&format!(
            "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#eee\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
            top + h,
            top + h + 16.0,
            tick(d)
        ));
    }
    for d in y0..=y1 {
        let y = py(10f64.powi(d));
        out.push_str(&format!(
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            left + w,
            left - 6.0,
            y + 4.0,
            tick(d)
        ));
    }
    out.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n<text transform=\"translate({},{}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
        left + w / 2.0,
        top + h + 36.0,
        escape(&panel.x_label),
        ox + 16.0,
        top + h / 2.0,
        escape(&panel.y_label)
    ));
    for s in &panel.series {
        let i = names.iter().position(|n| *n == s.name).unwrap_or(0);
        let colour = COLOURS[i % COLOURS.len()];
        let mut pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|(x, y)| *x > 0.0 && *y > 0.0)
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let line: Vec<String> = pts
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
            .collect();
        out.push_str(&format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2.5\"><title>{}</title></polyline>\n",
            line.join(" "),
            escape(&s.name)
        ));
        for (x, y) in &pts {
            out.push_str(&format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{colour}\"><title>{}: {} → {}</title></circle>\n",
                px(*x),
                py(*y),
                escape(&s.name),
                number(*x),
                number(*y)
            ));
        }
    }
    out.push_str("</g>\n");
    out
}

/// `1`, `10`, `100`, `1k`, `10k`, `1M`, … and `0.1`, `0.01` below one.
fn tick(decade: i32) -> String {
    match decade {
        d if d < 0 => format!("{}", 10f64.powi(d)),
        0..=2 => format!("{}", 10u64.pow(decade as u32)),
        3..=5 => format!("{}k", 10u64.pow(decade as u32 - 3)),
        6..=8 => format!("{}M", 10u64.pow(decade as u32 - 6)),
        d => format!("1e{d}"),
    }
}

fn number(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_axes_place_points_by_decade() {
        let panel = Panel {
            title: "Wall time".into(),
            x_label: "files".into(),
            y_label: "ms".into(),
            series: vec![
                Series {
                    name: "commit-back".into(),
                    points: vec![(1.0, 30.0), (1000.0, 150.0), (10000.0, 700.0)],
                },
                Series {
                    name: "git <CLI>".into(),
                    points: vec![(1.0, 45.0), (1000.0, 450.0), (10000.0, 5000.0)],
                },
            ],
        };
        let svg = svg("bench", &[panel], 1);
        assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 6);
        assert!(svg.contains("git &lt;CLI&gt;"));
        // x from 1 to 10k: four decades, ticks 1 … 10k; y from 10 to 10k.
        assert!(svg.contains(">10k</text>") && svg.contains(">1</text>"));
        assert_eq!(decades([30.0, 5000.0].into_iter()), (1, 4));
        assert_eq!(decades([1.0, 10000.0].into_iter()), (0, 4));
    }
}
