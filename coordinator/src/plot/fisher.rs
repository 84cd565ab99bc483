//! `fisher_weight.png`: each peer's Fisher rank (what removing it would cost
//! the peers that queried it, SPEC 5.3) against the weight it receives from
//! the rows in force (the sum of their normalised entries naming it), one
//! point per peer and epoch. Peers that help get weight: points rise to the right.

use plotters::prelude::*;

use super::canvas::{self, Canvas, FAMILY};
use super::{Csv, Data, PlotError};

/// `epoch,uid,series,fisher_rank,weight_received`, one row per peer and epoch.
pub fn csv(data: &Data) -> Csv {
    let rows = data
        .peers
        .iter()
        .map(|p| {
            vec![
                p.epoch.to_string(),
                p.uid.to_string(),
                data.series(p.uid).1,
                p.fisher_rank.to_string(),
                p.weight_received.to_string(),
            ]
        })
        .collect();
    Csv {
        header: vec!["epoch", "uid", "series", "fisher_rank", "weight_received"],
        rows,
    }
}

/// Draws the chart.
pub fn draw(data: &Data, c: &mut Canvas) -> Result<(), PlotError> {
    let sizes = c.sizes();
    let mut peers: Vec<_> = data.peers.iter().collect();
    peers.sort_by_key(|p| data.named.contains(&p.uid));
    // Fisher ranks spread over orders of magnitude: a log axis when they are
    // all positive and do, else a linear one.
    let fmin = peers
        .iter()
        .map(|p| p.fisher_rank)
        .fold(f64::INFINITY, f64::min);
    let fmax = peers.iter().map(|p| p.fisher_rank).fold(0.0f64, f64::max);
    let log = fmin > 0.0 && fmax / fmin > 50.0;
    let fx = move |v: f64| if log { v.log10() } else { v };
    let x = if log {
        canvas::padded(fmin.log10(), fmax.log10())
    } else {
        0f64..if fmax > 0.0 { fmax * 1.1 } else { 1.0 }
    };
    let x_labels = canvas::ticks(x.end - x.start);
    let x_fmt = move |v: &f64| {
        if log {
            format!("{:.0e}", 10f64.powf(*v))
        } else {
            x_labels(v)
        }
    };
    let x_desc = if log {
        "Fisher rank (cost of removing the peer, log scale)"
    } else {
        "Fisher rank (cost of removing the peer)"
    };
    let wmax = peers
        .iter()
        .map(|p| p.weight_received)
        .fold(0.0f64, f64::max);
    let y = 0f64..(wmax * 1.1).max(1.0);
    let y_fmt = canvas::ticks(y.end - y.start);
    let legend = data.legend(canvas::Mark::Dot);
    let title = format!(
        "Fisher rank against weight received, {}",
        canvas::span(data.first, data.last)
    );
    let last = data.last;
    c.draw("fisher_weight.png", |plot, side| {
        let mut chart = ChartBuilder::on(plot)
            .caption(title, (FAMILY, sizes.title))
            .margin(16)
            .x_label_area_size(sizes.label * 3)
            .y_label_area_size(sizes.label * 4)
            .build_cartesian_2d(x, y)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc("weight received (sum of row entries)")
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .label_style((FAMILY, sizes.tick))
            .axis_desc_style((FAMILY, sizes.label))
            .light_line_style(canvas::LIGHT)
            .draw()?;
        for p in &peers {
            let (color, _) = data.series(p.uid);
            // The last epoch solid, earlier epochs lighter.
            let style = if p.epoch == last {
                color.filled()
            } else {
                color.mix(0.45).filled()
            };
            let r = if data.named.contains(&p.uid) { 6 } else { 4 };
            chart.draw_series(std::iter::once(Circle::new(
                (fx(p.fisher_rank), p.weight_received),
                r,
                style,
            )))?;
        }
        if fmax <= 0.0 {
            let (w, h) = plot.dim_in_pixel();
            plot.draw(&Text::new(
                "no Fisher scores in these epochs: peers exchanged no answers",
                (w as i32 / 5, h as i32 / 2),
                (FAMILY, sizes.label).into_font().color(&BLACK.mix(0.7)),
            ))?;
        }
        canvas::legend(side, "peer (by stake)", &legend, sizes)?;
        if data.first != data.last {
            let (_, h) = side.dim_in_pixel();
            side.draw(&Text::new(
                "faded: earlier epochs",
                (8, h as i32 - 2 * sizes.tick as i32),
                (FAMILY, sizes.tick).into_font().color(&BLACK.mix(0.7)),
            ))?;
        }
        Ok(())
    })
}
