//! `rank_consensus.png`: at the last plotted epoch, each peer's rank (the
//! stake-weighted weight it receives) against its consensus (how surely a
//! majority of stake backs it); the product of the two drives its incentive.

use plotters::prelude::*;

use super::canvas::{self, Canvas, FAMILY};
use super::{Csv, Data, PeerEpoch, PlotError};

fn at_last(data: &Data) -> Vec<&PeerEpoch> {
    data.peers.iter().filter(|p| p.epoch == data.last).collect()
}

/// `epoch,uid,series,rank,consensus`, one row per peer at the last epoch.
pub fn csv(data: &Data) -> Csv {
    let rows = at_last(data)
        .into_iter()
        .map(|p| {
            vec![
                p.epoch.to_string(),
                p.uid.to_string(),
                data.series(p.uid).1,
                p.rank.to_string(),
                p.consensus.to_string(),
            ]
        })
        .collect();
    Csv {
        header: vec!["epoch", "uid", "series", "rank", "consensus"],
        rows,
    }
}

/// Draws the chart.
pub fn draw(data: &Data, c: &mut Canvas) -> Result<(), PlotError> {
    let sizes = c.sizes();
    let mut peers = at_last(data);
    // Others first, so named peers are drawn on top.
    peers.sort_by_key(|p| data.named.contains(&p.uid));
    let max_rank = peers.iter().map(|p| p.rank).fold(0.0f64, f64::max);
    let x = 0f64..(max_rank * 1.15).max(1e-9);
    let legend = data.legend(canvas::Mark::Dot);
    let x_fmt = canvas::ticks(x.end - x.start);
    let title = format!("Rank against consensus at epoch {}", data.last);
    c.draw("rank_consensus.png", |plot, side| {
        let mut chart = ChartBuilder::on(plot)
            .caption(title, (FAMILY, sizes.title))
            .margin(16)
            .x_label_area_size(sizes.label * 3)
            .y_label_area_size(sizes.label * 4)
            .build_cartesian_2d(x.clone(), -0.02f64..1.05)?;
        chart
            .configure_mesh()
            .x_desc("rank (stake-weighted weight received)")
            .y_desc("consensus")
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&|v| canvas::num(*v))
            .label_style((FAMILY, sizes.tick))
            .axis_desc_style((FAMILY, sizes.label))
            .light_line_style(canvas::LIGHT)
            .draw()?;
        // consensus = 0.5 where trust = kappa: above it, a majority backs the peer.
        chart.draw_series(DashedLineSeries::new(
            [(x.start, 0.5), (x.end, 0.5)],
            8,
            6,
            BLACK.mix(0.35).stroke_width(1),
        ))?;
        let mut labels = canvas::Labels::default();
        for p in &peers {
            let (color, _) = data.series(p.uid);
            let r = if data.named.contains(&p.uid) { 7 } else { 4 };
            labels.dot(chart.backend_coord(&(p.rank, p.consensus)), r);
            chart.draw_series(std::iter::once(Circle::new(
                (p.rank, p.consensus),
                r,
                color.filled(),
            )))?;
        }
        // Named peers' labels, largest stake first, where they fit.
        for uid in &data.named {
            let Some(p) = peers.iter().find(|p| p.uid == *uid) else {
                continue;
            };
            let name = data.series(p.uid).1;
            let at = chart.backend_coord(&(p.rank, p.consensus));
            if let Some(off) = labels.place(at, &name, sizes.tick) {
                chart.draw_series(std::iter::once(
                    EmptyElement::at((p.rank, p.consensus))
                        + Text::new(name, off, (FAMILY, sizes.tick)),
                ))?;
            }
        }
        canvas::legend(side, "peer (by stake)", &legend, sizes)?;
        Ok(())
    })
}
