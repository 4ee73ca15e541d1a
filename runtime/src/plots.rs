//! The pictures a training run leaves: loss and accuracy curves, and for 2-D data the
//! decision boundary (the model's probability as a heat map, the points on top), as PNG
//! and SVG. The font is bundled, so no system font is needed.

use crate::data::Dataset;
use crate::train::Epoch;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Once;

static FONT: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bundled font is valid; a failure here would be a broken build.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn error(e: impl std::fmt::Display) -> String {
    format!("cannot draw: {e}")
}

/// Writes `curves.png` and `curves.svg`: loss and accuracy per epoch, train and test.
pub fn curves(dir: &Path, title: &str, epochs: &[Epoch]) -> Result<Vec<PathBuf>, String> {
    register_font();
    let png = dir.join("curves.png");
    let svg = dir.join("curves.svg");
    draw_curves(BitMapBackend::new(&png, (1000, 400)).into_drawing_area(), title, epochs)?;
    draw_curves(SVGBackend::new(&svg, (1000, 400)).into_drawing_area(), title, epochs)?;
    Ok(vec![png, svg])
}

fn draw_curves<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, title: &str, epochs: &[Epoch]) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(error)?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(error)?;
    let (left, right) = root.split_horizontally(500);
    let last = epochs.len().max(1) as f64;
    let series = |get: &dyn Fn(&Epoch) -> Option<f64>| -> Vec<(f64, f64)> {
        epochs.iter().filter_map(|e| get(e).map(|v| (e.epoch as f64, v))).collect()
    };
    type Points = Vec<(f64, f64)>;
    let panels: [(&DrawingArea<DB, Shift>, &str, Points, Points); 2] = [
        (&left, "loss", series(&|e| Some(e.train_loss)), series(&|e| e.test_loss)),
        (&right, "accuracy", series(&|e| e.train_accuracy), series(&|e| e.test_accuracy)),
    ];
    for (area, name, train, test) in panels {
        if train.is_empty() && test.is_empty() {
            continue;
        }
        let top = train.iter().chain(&test).map(|p| p.1).fold(f64::MIN, f64::max);
        let bottom = train.iter().chain(&test).map(|p| p.1).fold(f64::MAX, f64::min);
        let (low, high) =
            if name == "accuracy" { (bottom.clamp(0.0, 1.0) * 0.95, 1.0) } else { (0.0, top * 1.05 + 1e-9) };
        let mut chart = ChartBuilder::on(area)
            .margin(15)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(1.0..last.max(2.0), low..high)
            .map_err(error)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(name)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(error)?;
        for (points, label, color) in [(train, "train", PALETTE[0]), (test, "test", PALETTE[1])] {
            if points.is_empty() {
                continue;
            }
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(error)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(error)?;
    }
    root.present().map_err(error)
}

/// A decision boundary: for each cell of an `n` by `n` grid over `x` and `y`, the predicted
/// class and its probability.
pub struct Boundary {
    pub n: usize,
    pub x: (f64, f64),
    pub y: (f64, f64),
    /// Row-major from the bottom-left, `(class, probability)`.
    pub cells: Vec<(usize, f64)>,
}

/// Writes `boundary.png` and `boundary.svg`.
pub fn boundary(dir: &Path, title: &str, grid: &Boundary, data: &Dataset) -> Result<Vec<PathBuf>, String> {
    register_font();
    let png = dir.join("boundary.png");
    let svg = dir.join("boundary.svg");
    draw_boundary(BitMapBackend::new(&png, (600, 600)).into_drawing_area(), title, grid, data)?;
    draw_boundary(SVGBackend::new(&svg, (600, 600)).into_drawing_area(), title, grid, data)?;
    Ok(vec![png, svg])
}

fn draw_boundary<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    grid: &Boundary,
    data: &Dataset,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(35)
        .y_label_area_size(45)
        .build_cartesian_2d(grid.x.0..grid.x.1, grid.y.0..grid.y.1)
        .map_err(error)?;
    chart.configure_mesh().disable_mesh().label_style(("sans-serif", 13)).draw().map_err(error)?;
    let (dx, dy) = ((grid.x.1 - grid.x.0) / grid.n as f64, (grid.y.1 - grid.y.0) / grid.n as f64);
    chart
        .draw_series(grid.cells.iter().enumerate().map(|(i, &(class, p))| {
            let (col, row) = (i % grid.n, i / grid.n);
            let x = grid.x.0 + col as f64 * dx;
            let y = grid.y.0 + row as f64 * dy;
            // Pale where the model is unsure, full colour where it is sure.
            let base = PALETTE[class % PALETTE.len()];
            let strength = ((p - 0.5).abs() * 2.0).clamp(0.0, 1.0) * 0.55 + 0.1;
            Rectangle::new([(x, y), (x + dx, y + dy)], base.mix(strength).filled())
        }))
        .map_err(error)?;
    chart
        .draw_series((0..data.n).map(|i| {
            let (x, y) = (data.features[2 * i], data.features[2 * i + 1]);
            let color = PALETTE[data.labels[i] as usize % PALETTE.len()];
            Circle::new((x, y), 3, color.filled())
        }))
        .map_err(error)?;
    chart
        .draw_series(
            (0..data.n)
                .map(|i| Circle::new((data.features[2 * i], data.features[2 * i + 1]), 3, BLACK.stroke_width(1))),
        )
        .map_err(error)?;
    root.present().map_err(error)
}
