//! `peg.png`: the loss of each epoch (left axis; negative when inflation
//! flows to peers a majority backs) and the k each epoch's rows had to meet
//! (right axis; it rises by `peg_step` after a positive loss).

use plotters::prelude::*;

use super::canvas::{self, Canvas, FAMILY, PALETTE};
use super::{Csv, Data, PlotError};

/// `epoch,loss,k,k_next`, one row per epoch.
pub fn csv(data: &Data) -> Csv {
    let rows = data
        .epochs
        .iter()
        .map(|e| {
            vec![
                e.epoch.to_string(),
                e.loss.to_string(),
                e.k.to_string(),
                e.k_next.to_string(),
            ]
        })
        .collect();
    Csv {
        header: vec!["epoch", "loss", "k", "k_next"],
        rows,
    }
}

/// Draws the chart.
pub fn draw(data: &Data, c: &mut Canvas) -> Result<(), PlotError> {
    let sizes = c.sizes();
    let (lo, hi) = data.epochs.iter().fold((0.0f64, 0.0f64), |(lo, hi), e| {
        (lo.min(e.loss), hi.max(e.loss))
    });
    let loss_range = canvas::padded(lo, hi);
    let loss_fmt = canvas::ticks(loss_range.end - loss_range.start);
    let kmax = data
        .epochs
        .iter()
        .map(|e| e.k.max(e.k_next))
        .max()
        .unwrap_or(1);
    let k_range = 0f64..((kmax as f64 * 1.2).ceil()).max(kmax as f64 + 1.0);
    let xr = canvas::epoch_axis(data.first, data.last);
    let (loss_color, k_color) = (PALETTE[2], PALETTE[0]);
    let legend = vec![
        canvas::Entry {
            color: loss_color,
            name: "loss (left)".into(),
            mark: canvas::Mark::Line,
        },
        canvas::Entry {
            color: k_color,
            name: "k (right)".into(),
            mark: canvas::Mark::Line,
        },
    ];
    let title = format!(
        "Loss and the peg k, {}",
        canvas::span(data.first, data.last)
    );
    c.draw("peg.png", |plot, side| {
        let mut chart = ChartBuilder::on(plot)
            .caption(title, (FAMILY, sizes.title))
            .margin(16)
            .x_label_area_size(sizes.label * 3)
            .y_label_area_size(sizes.label * 4)
            .right_y_label_area_size(sizes.label * 3)
            .build_cartesian_2d(xr.clone(), loss_range.clone())?
            .set_secondary_coord(xr.clone(), k_range);
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("loss")
            .x_labels(12)
            .y_label_formatter(&loss_fmt)
            .label_style((FAMILY, sizes.tick))
            .axis_desc_style((FAMILY, sizes.label))
            .light_line_style(canvas::LIGHT)
            .draw()?;
        chart
            .configure_secondary_axes()
            .y_desc("k (weights each row must set)")
            .y_label_formatter(&canvas::whole)
            .label_style((FAMILY, sizes.tick))
            .axis_desc_style((FAMILY, sizes.label))
            .draw()?;
        // Zero loss: above it k rises.
        chart.draw_series(DashedLineSeries::new(
            [(xr.start, 0.0), (xr.end, 0.0)],
            8,
            6,
            BLACK.mix(0.4).stroke_width(1),
        ))?;
        let loss: Vec<(i64, f64)> = data
            .epochs
            .iter()
            .map(|e| (e.epoch as i64, e.loss))
            .collect();
        chart.draw_series(LineSeries::new(loss.clone(), loss_color.stroke_width(3)))?;
        chart.draw_series(loss.iter().map(|p| Circle::new(*p, 4, loss_color.filled())))?;
        // k holds for a whole epoch: a step line.
        let mut steps = Vec::new();
        for e in &data.epochs {
            let x = e.epoch as i64;
            if let Some((_, prev)) = steps.last().copied() {
                steps.push((x, prev));
            }
            steps.push((x, e.k as f64));
        }
        chart.draw_secondary_series(LineSeries::new(steps, k_color.stroke_width(3)))?;
        chart.draw_secondary_series(
            data.epochs
                .iter()
                .map(|e| Circle::new((e.epoch as i64, e.k as f64), 4, k_color.filled())),
        )?;
        canvas::legend(side, "series", &legend, sizes)?;
        Ok(())
    })
}
