//! `stake_share.png`: how all stake is split after every epoch, as stacked
//! bands that fill 100 %: one band per named peer (largest stake at the last
//! epoch on top) and one grey band for all other peers together, at the bottom.

use plotters::prelude::*;

use super::canvas::{self, Canvas, FAMILY};
use super::{grouped, Csv, Data, PlotError};

/// `series,epoch,stake_share`, one row per series and epoch (the share
/// itself, not the stacked height).
pub fn csv(data: &Data) -> Csv {
    let mut rows = Vec::new();
    for (name, pts) in grouped(data, |p| p.stake_share) {
        for (e, v) in pts {
            rows.push(vec![name.clone(), e.to_string(), v.to_string()]);
        }
    }
    Csv {
        header: vec!["series", "epoch", "stake_share"],
        rows,
    }
}

/// Draws the chart.
pub fn draw(data: &Data, c: &mut Canvas) -> Result<(), PlotError> {
    let sizes = c.sizes();
    let epochs: Vec<u64> = data.epochs.iter().map(|e| e.epoch).collect();
    // Bands bottom-up: "others" first, then named peers from the smallest.
    let mut bands = grouped(data, |p| p.stake_share);
    let legend = data.legend(canvas::Mark::Swatch);
    let mut colors: Vec<RGBColor> = legend.iter().map(|e| e.color).collect();
    bands.reverse();
    colors.reverse();
    // A single epoch is drawn as a column one epoch wide.
    let xs: Vec<f64> = if epochs.len() == 1 {
        vec![epochs[0] as f64 - 0.4, epochs[0] as f64 + 0.4]
    } else {
        epochs.iter().map(|e| *e as f64).collect()
    };
    let value_at = |pts: &[(u64, f64)], i: usize| {
        let e = epochs[i.min(epochs.len() - 1)];
        pts.iter()
            .find(|(x, _)| *x == e)
            .map(|(_, v)| *v)
            .unwrap_or(0.0)
    };
    let mut lower = vec![0.0f64; xs.len()];
    let mut polys = Vec::new();
    for (_, pts) in &bands {
        let upper: Vec<f64> = (0..xs.len()).map(|i| lower[i] + value_at(pts, i)).collect();
        let mut poly: Vec<(f64, f64)> = xs.iter().copied().zip(upper.iter().copied()).collect();
        poly.extend(xs.iter().copied().zip(lower.iter().copied()).rev());
        polys.push((poly, upper.clone()));
        lower = upper;
    }
    let (x0, x1) = (xs[0], xs[xs.len() - 1]);
    let title = format!(
        "Stake share per peer, {}",
        canvas::span(data.first, data.last)
    );
    c.draw("stake_share.png", |plot, side| {
        let mut chart = ChartBuilder::on(plot)
            .caption(title, (FAMILY, sizes.title))
            .margin(16)
            .x_label_area_size(sizes.label * 3)
            .y_label_area_size(sizes.label * 4)
            .build_cartesian_2d(x0..x1, 0f64..1.0)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("share of all stake (stacked)")
            .x_labels(12)
            .x_label_formatter(&canvas::whole)
            .y_label_formatter(&|v| format!("{:.0}%", v * 100.0))
            .label_style((FAMILY, sizes.tick))
            .axis_desc_style((FAMILY, sizes.label))
            .light_line_style(canvas::LIGHT)
            .draw()?;
        for ((poly, upper), color) in polys.iter().zip(&colors) {
            chart.draw_series(std::iter::once(Polygon::new(poly.clone(), color.filled())))?;
            chart.draw_series(LineSeries::new(
                xs.iter().copied().zip(upper.iter().copied()),
                WHITE.stroke_width(1),
            ))?;
        }
        canvas::legend(side, "peer (by stake)", &legend, sizes)?;
        Ok(())
    })
}
