//! Plots of share over time: each tenant's achieved share of the device's useful time (solid)
//! against its entitlement (dashed), per 100 ms. SVG is written by hand; PNG is rasterised
//! here (labels in a 5x7 bitmap font) and encoded with the `png` crate.

use std::fs;
use std::path::{Path, PathBuf};

use crate::metrics::{RunTrace, ShareSeries, TICK};

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("encoding PNG: {0}")]
    Png(#[from] png::EncodingError),
}

/// Bin width of the plots, in ticks (100 ms).
const BIN_TICKS: usize = 10;
const W: usize = 900;
const H: usize = 420;
const LEFT: usize = 60;
const RIGHT: usize = 170;
const TOP: usize = 40;
const BOTTOM: usize = 40;

const COLOURS: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// Per tenant, (achieved, entitled) share of each 100 ms bin.
pub struct Shares {
    pub bin_ms: f64,
    pub achieved: Vec<Vec<f64>>,
    pub entitled: Vec<Vec<f64>>,
}

pub fn shares(trace: &RunTrace) -> Shares {
    let series = ShareSeries::new(trace);
    let bins = series.ticks / BIN_TICKS;
    let n = trace.tenants.len();
    let mut achieved = vec![vec![0.0; bins]; n];
    let mut entitled = vec![vec![0.0; bins]; n];
    for b in 0..bins {
        let w = series.window(b * BIN_TICKS, (b + 1) * BIN_TICKS);
        let total: f64 = w.iter().map(|x| x.0).sum();
        for (i, (a, e)) in w.into_iter().enumerate() {
            if total > 0.0 {
                achieved[i][b] = a / total;
                entitled[i][b] = e / total;
            }
        }
    }
    Shares {
        bin_ms: (BIN_TICKS as u64 * TICK) as f64 / 1e6,
        achieved,
        entitled,
    }
}

/// Upper bound of the y axis: the largest share, rounded up to a tenth.
fn y_max(s: &Shares) -> f64 {
    let m = s
        .achieved
        .iter()
        .chain(&s.entitled)
        .flatten()
        .fold(0.0f64, |a, &b| a.max(b));
    ((m * 10.0).ceil() / 10.0).clamp(0.1, 1.0)
}

fn xy(s: &Shares, bin: usize, share: f64, ymax: f64) -> (f64, f64) {
    let bins = s.achieved.first().map_or(1, Vec::len).max(2) - 1;
    let x = LEFT as f64 + (W - LEFT - RIGHT) as f64 * bin as f64 / bins as f64;
    let y = (H - BOTTOM) as f64 - (H - TOP - BOTTOM) as f64 * (share / ymax).min(1.0);
    (x, y)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn svg(title: &str, trace: &RunTrace) -> String {
    let s = shares(trace);
    let ymax = y_max(&s);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n<text x=\"{LEFT}\" y=\"24\" font-size=\"15\">{}</text>\n",
        escape(title)
    );
    for k in 0..=5 {
        let v = ymax * k as f64 / 5.0;
        let (_, y) = xy(&s, 0, v, ymax);
        out += &format!(
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{:.0}%</text>\n",
            W - RIGHT,
            LEFT - 6,
            y + 4.0,
            v * 100.0
        );
    }
    let seconds = trace.duration as f64 / 1e9;
    for k in 0..=seconds.floor() as usize {
        let x = LEFT as f64 + (W - LEFT - RIGHT) as f64 * k as f64 / seconds.max(1e-9);
        out += &format!(
            "<text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{k}s</text>\n",
            H - BOTTOM + 16
        );
    }
    out += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">time (share per {:.0} ms: solid achieved, dashed entitled)</text>\n",
        (LEFT + W - RIGHT) / 2,
        H - 8,
        s.bin_ms
    );
    for (i, t) in trace.tenants.iter().enumerate() {
        let [r, g, b] = COLOURS[i % COLOURS.len()];
        for (series, dash) in [
            (&s.entitled[i], " stroke-dasharray=\"4 3\""),
            (&s.achieved[i], ""),
        ] {
            let pts: Vec<String> = series
                .iter()
                .enumerate()
                .map(|(k, &v)| {
                    let (x, y) = xy(&s, k, v, ymax);
                    format!("{x:.1},{y:.1}")
                })
                .collect();
            out += &format!(
                "<polyline fill=\"none\" stroke=\"rgb({r},{g},{b})\" stroke-width=\"1.5\"{dash} points=\"{}\"/>\n",
                pts.join(" ")
            );
        }
        if i < 24 {
            let y = TOP + 14 * i;
            out += &format!(
                "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"3\" fill=\"rgb({r},{g},{b})\"/><text x=\"{}\" y=\"{}\">{} (w{})</text>\n",
                W - RIGHT + 10,
                y + 4,
                W - RIGHT + 26,
                y + 9,
                escape(&t.name),
                t.weight
            );
        }
    }
    out += &format!(
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"black\"/>\n</svg>\n",
        W - LEFT - RIGHT,
        H - TOP - BOTTOM
    );
    out
}

struct Canvas {
    px: Vec<u8>,
}

impl Canvas {
    fn new() -> Self {
        Self {
            px: vec![255; W * H * 3],
        }
    }

    fn dot(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if (0..W as i64).contains(&x) && (0..H as i64).contains(&y) {
            let i = (y as usize * W + x as usize) * 3;
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }

    /// A line two pixels wide; `dash` leaves gaps every few pixels.
    fn line(&mut self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), c: [u8; 3], dash: bool) {
        let steps = (x1 - x0).abs().max((y1 - y0).abs()).ceil().max(1.0) as usize;
        for k in 0..=steps {
            if dash && (k / 4) % 2 == 1 {
                continue;
            }
            let t = k as f64 / steps as f64;
            let (x, y) = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t);
            self.dot(x.round() as i64, y.round() as i64, c);
            self.dot(x.round() as i64, y.round() as i64 + 1, c);
        }
    }

    /// Draws `text` with its top-left corner at (x, y), each font pixel `scale` wide.
    fn text(&mut self, x: usize, y: usize, text: &str, scale: usize, c: [u8; 3]) {
        for (k, ch) in text.chars().enumerate() {
            for (row, bits) in crate::font::glyph(ch).iter().enumerate() {
                for col in 0..5 {
                    if bits & (0x10 >> col) != 0 {
                        let (px, py) = (x + (k * 6 + col) * scale, y + row * scale);
                        self.rect(px, py, scale, scale, c);
                    }
                }
            }
        }
    }

    fn text_width(text: &str, scale: usize) -> usize {
        text.chars().count() * 6 * scale
    }

    fn rect(&mut self, x: usize, y: usize, w: usize, h: usize, c: [u8; 3]) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.dot(xx as i64, yy as i64, c);
            }
        }
    }
}

/// The same plot as [`svg`], rasterised with a small bitmap font.
pub fn png(title: &str, trace: &RunTrace) -> Result<Vec<u8>, PlotError> {
    let s = shares(trace);
    let ymax = y_max(&s);
    let mut c = Canvas::new();
    let ink = [0, 0, 0];
    c.text(LEFT, 12, title, 2, ink);
    for k in 0..=5 {
        let v = ymax * k as f64 / 5.0;
        let (_, y) = xy(&s, 0, v, ymax);
        c.line(
            (LEFT as f64, y),
            ((W - RIGHT) as f64, y),
            [221, 221, 221],
            false,
        );
        let label = format!("{:.0}%", v * 100.0);
        let x = LEFT.saturating_sub(6 + Canvas::text_width(&label, 1));
        c.text(x, (y as usize).saturating_sub(3), &label, 1, ink);
    }
    let seconds = trace.duration as f64 / 1e9;
    for k in 0..=seconds.floor() as usize {
        let x = LEFT as f64 + (W - LEFT - RIGHT) as f64 * k as f64 / seconds.max(1e-9);
        let label = format!("{k}s");
        let w = Canvas::text_width(&label, 1);
        c.text(
            (x as usize).saturating_sub(w / 2),
            H - BOTTOM + 8,
            &label,
            1,
            ink,
        );
    }
    c.text(
        LEFT,
        H - 16,
        &format!(
            "share per {:.0} ms: solid achieved, dashed entitled",
            s.bin_ms
        ),
        1,
        ink,
    );
    for i in 0..trace.tenants.len() {
        let colour = COLOURS[i % COLOURS.len()];
        for (series, dash) in [(&s.entitled[i], true), (&s.achieved[i], false)] {
            for k in 1..series.len() {
                c.line(
                    xy(&s, k - 1, series[k - 1], ymax),
                    xy(&s, k, series[k], ymax),
                    colour,
                    dash,
                );
            }
        }
        if i < 24 {
            c.rect(W - RIGHT + 10, TOP + 14 * i + 2, 12, 3, colour);
            let t = &trace.tenants[i];
            let label: String = format!("{} (w{})", t.name, t.weight)
                .chars()
                .take(22)
                .collect();
            c.text(W - RIGHT + 26, TOP + 14 * i, &label, 1, ink);
        }
    }
    let (l, t, r, b) = (
        LEFT as f64,
        TOP as f64,
        (W - RIGHT) as f64,
        (H - BOTTOM) as f64,
    );
    for (p, q) in [
        ((l, t), (r, t)),
        ((r, t), (r, b)),
        ((l, b), (r, b)),
        ((l, t), (l, b)),
    ] {
        c.line(p, q, [0, 0, 0], false);
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, W as u32, H as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header()?;
        w.write_image_data(&c.px)?;
    }
    Ok(out)
}

/// Writes `<stem>.svg` and `<stem>.png` into `dir`.
pub fn write(
    dir: &Path,
    stem: &str,
    title: &str,
    trace: &RunTrace,
) -> Result<Vec<PathBuf>, PlotError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| PlotError::Io { path, source }
    };
    fs::create_dir_all(dir).map_err(io(dir))?;
    let svg_path = dir.join(format!("{stem}.svg"));
    fs::write(&svg_path, svg(title, trace)).map_err(io(&svg_path))?;
    let png_path = dir.join(format!("{stem}.png"));
    fs::write(&png_path, png(title, trace)?).map_err(io(&png_path))?;
    Ok(vec![svg_path, png_path])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{find, run_sim};
    use crate::clock::MS;
    use crate::policy::PolicyKind;

    #[test]
    fn shares_sum_to_one_and_follow_weights() {
        let s = find("weighted-30-70").unwrap();
        let (_, trace) = run_sim(&s, PolicyKind::Weighted, 2000 * MS).unwrap();
        let sh = shares(&trace);
        assert_eq!(sh.achieved[0].len(), 20);
        for b in 0..20 {
            let sum = sh.achieved[0][b] + sh.achieved[1][b];
            assert!((sum - 1.0).abs() < 1e-9);
            assert!((sh.entitled[0][b] - 0.3).abs() < 0.01);
            assert!(
                (sh.achieved[0][b] - 0.3).abs() < 0.05,
                "bin {b}: {}",
                sh.achieved[0][b]
            );
        }
        let svg = svg("weighted <30-70>", &trace);
        assert!(svg.contains("&lt;30-70&gt;") && svg.matches("<polyline").count() == 4);
        let png = png("t", &trace).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let reader = decoder.read_info().unwrap();
        assert_eq!(
            (reader.info().width, reader.info().height),
            (W as u32, H as u32)
        );
    }
}
