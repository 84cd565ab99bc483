//! What every chart shares: the embedded font, the palette, the legend panel,
//! number labels and the PNG encoding.
//!
//! Text is drawn with `ab_glyph` from a copy of DejaVu Sans compiled into the
//! binary, so charts look the same everywhere and need no system font library.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::PlotError;

/// DejaVu Sans (its license is in `coordinator/assets/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// The family every chart names; registered once with the embedded font.
pub const FAMILY: &str = "sans-serif";

/// Registers the embedded font (once per process).
pub fn fonts() -> Result<(), PlotError> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE
        .get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(PlotError::Font)
    }
}

/// Eight colours that stay apart from each other and from [`OTHERS`]
/// (Tableau 10 without its yellow and grey).
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0x9c, 0x75, 0x5f),
    RGBColor(0xff, 0x9d, 0xa7),
];

/// The colour of the peers grouped as "others".
pub const OTHERS: RGBColor = RGBColor(0x9a, 0x9a, 0x9a);

/// The name of the grouped series, in charts and CSV.
pub const OTHERS_NAME: &str = "others";

/// Pixel sizes of the text, scaled with the image height.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Chart title.
    pub title: u32,
    /// Axis descriptions and legend.
    pub label: u32,
    /// Tick labels and point labels.
    pub tick: u32,
}

impl Sizes {
    /// Sizes for an image `height` pixels tall (readable from 300 px up).
    pub fn for_height(height: u32) -> Sizes {
        let s = |px: f64| ((px * height as f64 / 700.0).round() as u32).max(10);
        Sizes {
            title: s(28.0),
            label: s(19.0),
            tick: s(16.0),
        }
    }
}

/// How a legend entry shows its series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// A line sample.
    Line,
    /// A dot, for scatter charts.
    Dot,
    /// A filled square, for bands.
    Swatch,
}

/// One legend line: a colour, a name, and its mark.
pub struct Entry {
    /// The series colour.
    pub color: RGBColor,
    /// The series name.
    pub name: String,
    /// How the series is drawn.
    pub mark: Mark,
}

/// The minor grid: light enough not to compete with the data.
pub const LIGHT: RGBColor = RGBColor(0xee, 0xee, 0xee);

/// An RGB image in memory that charts draw on, then written as PNG.
pub struct Canvas {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    buf: Vec<u8>,
}

impl Canvas {
    /// A white canvas.
    pub fn new(width: u32, height: u32) -> Canvas {
        Canvas {
            width,
            height,
            buf: vec![255; width as usize * height as usize * 3],
        }
    }

    /// Text sizes for this canvas.
    pub fn sizes(&self) -> Sizes {
        Sizes::for_height(self.height)
    }

    /// Width of the legend panel at the right.
    pub fn legend_width(&self) -> u32 {
        (self.width / 5).clamp(140, 260)
    }

    /// Draws with `f` on the plot area (left) and the legend panel (right).
    pub fn draw<F>(&mut self, chart: &str, f: F) -> Result<(), PlotError>
    where
        F: FnOnce(
            &DrawingArea<BitMapBackend<'_>, Shift>,
            &DrawingArea<BitMapBackend<'_>, Shift>,
        ) -> Result<(), Box<dyn std::error::Error>>,
    {
        let (w, h, lw) = (self.width, self.height, self.legend_width());
        let root = BitMapBackend::with_buffer(&mut self.buf, (w, h)).into_drawing_area();
        let (plot, legend) = root.split_horizontally(w - lw);
        let drawn = f(&plot, &legend).map_err(|e| e.to_string());
        let presented = root.present().map_err(|e| e.to_string());
        drawn.and(presented).map_err(|detail| PlotError::Draw {
            chart: chart.to_string(),
            detail,
        })
    }

    /// Encodes the canvas as an 8-bit RGB PNG at `path`.
    pub fn save(&self, path: &Path) -> Result<(), PlotError> {
        let werr = |e: std::io::Error| PlotError::Write {
            path: path.to_path_buf(),
            source: e,
        };
        let file = std::fs::File::create(path).map_err(werr)?;
        let mut enc = png::Encoder::new(std::io::BufWriter::new(file), self.width, self.height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let perr = |e: png::EncodingError| {
            werr(std::io::Error::other(format!("PNG encoding failed: {e}")))
        };
        let mut w = enc.write_header().map_err(perr)?;
        w.write_image_data(&self.buf).map_err(perr)?;
        w.finish().map_err(perr)
    }
}

/// Draws the legend entries top-down in the right-hand panel, under `heading`.
pub fn legend(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    heading: &str,
    entries: &[Entry],
    sizes: Sizes,
) -> Result<(), Box<dyn std::error::Error>> {
    let row = (sizes.label as i32 * 3) / 2;
    let x = 8;
    let mut y = sizes.title as i32 * 2 + 8;
    area.draw(&Text::new(
        heading.to_string(),
        (x, y),
        (FAMILY, sizes.label).into_font().color(&BLACK),
    ))?;
    y += row + row / 3;
    for e in entries {
        let mid = y + sizes.label as i32 / 2;
        match e.mark {
            Mark::Line => area.draw(&Rectangle::new(
                [(x, mid - 2), (x + 26, mid + 2)],
                e.color.filled(),
            ))?,
            Mark::Dot => area.draw(&Circle::new((x + 13, mid), 6, e.color.filled()))?,
            Mark::Swatch => area.draw(&Rectangle::new(
                [(x + 4, mid - 9), (x + 22, mid + 9)],
                e.color.filled(),
            ))?,
        }
        area.draw(&Text::new(
            e.name.clone(),
            (x + 36, y),
            (FAMILY, sizes.label).into_font().color(&BLACK),
        ))?;
        y += row;
    }
    Ok(())
}

/// A short tick label: plain decimals for ordinary magnitudes, `1.2e-5` otherwise.
pub fn num(v: f64) -> String {
    let a = v.abs();
    // Tick positions like 6.9e-18 are zero plus rounding.
    if a < 1e-12 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// `lo..hi` widened by 5 % each side (and to a unit span when flat), so no
/// point sits on the frame.
pub fn padded(lo: f64, hi: f64) -> std::ops::Range<f64> {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    let span = hi - lo;
    if span <= f64::EPSILON * hi.abs().max(1.0) {
        let d = if lo.abs() > 0.0 { lo.abs() * 0.1 } else { 1.0 };
        return (lo - d)..(hi + d);
    }
    (lo - span * 0.05)..(hi + span * 0.05)
}

/// The epoch axis: whole epochs only, at least one epoch wide.
pub fn epoch_axis(first: u64, last: u64) -> std::ops::Range<i64> {
    let (a, b) = (first as i64, last as i64);
    if a == b {
        (a - 1)..(b + 1)
    } else {
        a..b
    }
}

/// Labels whole epochs on an `f64` axis and leaves in-between ticks blank.
pub fn whole(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{:.0}", v.round())
    } else {
        String::new()
    }
}

/// Places point labels without overlaps: tries four spots around a point
/// and skips the label (the legend still names the colour) when all are taken.
#[derive(Default)]
pub struct Labels {
    taken: Vec<(i32, i32, i32, i32)>,
}

impl Labels {
    /// Reserves a point's own dot so labels avoid it.
    pub fn dot(&mut self, (x, y): (i32, i32), r: i32) {
        self.taken.push((x - r, y - r, x + r, y + r));
    }

    /// The offset from the point for a label of `text` at `size` px, if one is free.
    pub fn place(&mut self, (x, y): (i32, i32), text: &str, size: u32) -> Option<(i32, i32)> {
        let w = (text.chars().count() as f64 * size as f64 * 0.62) as i32;
        let h = size as i32;
        let spots = [(10, -h - 2), (10, 4), (-w - 10, -h - 2), (-w - 10, 4)];
        for (dx, dy) in spots {
            let r = (x + dx, y + dy, x + dx + w, y + dy + h);
            let free = self
                .taken
                .iter()
                .all(|t| r.2 < t.0 || r.0 > t.2 || r.3 < t.1 || r.1 > t.3);
            if free {
                self.taken.push(r);
                return Some((dx, dy));
            }
        }
        None
    }
}

/// "epoch 3" or "epochs 0..11", for titles.
pub fn span(first: u64, last: u64) -> String {
    if first == last {
        format!("epoch {first}")
    } else {
        format!("epochs {first}..{last}")
    }
}

/// Tick labels for an axis spanning `span`: as many decimals as the ticks
/// (about a tenth of the span) need, so neighbours never print alike.
pub fn ticks(span: f64) -> impl Fn(&f64) -> String {
    let step = (span.abs() / 10.0).max(f64::MIN_POSITIVE);
    let decimals = (-step.log10()).ceil().clamp(0.0, 12.0) as usize;
    move |v: &f64| {
        if v.abs() < step * 1e-6 {
            "0".into()
        } else if v.abs() >= 1e5 || decimals > 5 {
            format!("{v:.1e}")
        } else {
            format!("{v:.decimals$}")
        }
    }
}
