//! `loss.png`: training and evaluation loss against the step, drawn with plotters.

use crate::checkpoint::LogEntry;
use crate::error::{ckpt, Result};
use plotters::prelude::*;
use std::path::Path;

/// A named series of (step, loss) points.
pub struct Series<'a> {
    /// Legend label.
    pub label: &'a str,
    /// Points in step order.
    pub points: Points,
}

/// (step, loss) points.
pub type Points = Vec<(f64, f64)>;

/// The training-loss and evaluation-loss points of a log.
pub fn series_of(log: &[LogEntry]) -> (Points, Points) {
    let train = log
        .iter()
        .filter_map(|e| Some((e.step as f64, e.loss?)))
        .collect();
    let eval = log
        .iter()
        .filter_map(|e| Some((e.step as f64, e.eval_loss?)))
        .collect();
    (train, eval)
}

/// Registers a system sans-serif font for labels (plotters draws no text without one); false
/// when none is found, and the plot is then drawn without text.
fn font() -> bool {
    static FOUND: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FOUND.get_or_init(|| {
        let candidates = [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
            "/System/Library/Fonts/Supplemental/Arial.ttf",
        ];
        for c in candidates {
            if let Ok(bytes) = std::fs::read(c) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

/// Draws the series into a PNG at `path` with the title `title`.
pub fn loss_png(path: &Path, title: &str, series: &[Series]) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| ckpt(path.display(), format!("plot: {e}"));
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .collect();
    if all.is_empty() {
        return Ok(());
    }
    let (x1, y0, y1) = all
        .iter()
        .fold((1.0f64, f64::MAX, f64::MIN), |(x, lo, hi), &(px, py)| {
            (x.max(px), lo.min(py), hi.max(py))
        });
    let pad = ((y1 - y0) * 0.05).max(1e-3);
    let text = font();
    let root = BitMapBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(16);
    if text {
        builder
            .caption(title, ("sans-serif", 22))
            .x_label_area_size(40)
            .y_label_area_size(56);
    }
    let mut chart = builder
        .build_cartesian_2d(0.0..x1, (y0 - pad)..(y1 + pad))
        .map_err(|e| err(&e))?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("optimizer step").y_desc("loss (nats/token)");
    } else {
        mesh.disable_x_mesh()
            .disable_y_mesh()
            .x_labels(0)
            .y_labels(0);
    }
    mesh.draw().map_err(|e| err(&e))?;
    let colors = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    for (i, s) in series.iter().enumerate() {
        let color = colors[i % colors.len()];
        let line = chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| err(&e))?;
        if text {
            line.label(s.label).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        }
    }
    if text {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
