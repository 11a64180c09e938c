//! The cost of attention against the context length, as a figure: time and peak memory on
//! log-log axes, one line per variant, each labelled with its fitted growth exponent.

use std::path::Path;

use plotters::prelude::*;

use crate::error::VizError;
use crate::figure::{self, FONT, Pixels, SERIES};

/// One variant's measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct CostSeries {
    /// The variant.
    pub name: String,
    /// `(context, milliseconds, peak bytes)`.
    pub points: Vec<(usize, f64, Option<u64>)>,
    /// The fitted exponent of time against context.
    pub time_exponent: f64,
    /// The fitted exponent of memory against context.
    pub memory_exponent: Option<f64>,
}

/// The figure.
#[derive(Debug, Clone, PartialEq)]
pub struct CostFigure {
    /// What was measured (a line above the panels).
    pub title: String,
    /// The variants.
    pub series: Vec<CostSeries>,
}

impl CostFigure {
    /// Draws the two panels and writes them to `path` as PNG.
    pub fn write_png(&self, path: &Path) -> Result<(), VizError> {
        let (width, height) = (1400u32, 640u32);
        let mut pixels = Pixels::new(width, height);
        figure::register_font();
        let draw_error = figure::draw_error(path);
        {
            let root = BitMapBackend::with_buffer(&mut pixels.rgb, (width, height)).into_drawing_area();
            let (title, body) = root.split_vertically(40);
            title
                .draw(&Text::new(self.title.clone(), (16, 12), (FONT, 18).into_font()))
                .map_err(|e| draw_error(&e))?;
            let (left, right) = body.split_horizontally(width / 2);
            self.panel(
                &left,
                "forward + backward time (ms)",
                |p| Some(p.1),
                |s| s.time_exponent,
            )
            .map_err(|e| draw_error(&e))?;
            self.panel(
                &right,
                "peak memory allocated (MiB)",
                |p| p.2.map(|b| b as f64 / (1024.0 * 1024.0)),
                |s| s.memory_exponent.unwrap_or(f64::NAN),
            )
            .map_err(|e| draw_error(&e))?;
            root.present().map_err(|e| draw_error(&e))?;
        }
        pixels.save(path)
    }

    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, plotters::coord::Shift>,
        name: &str,
        value: fn(&(usize, f64, Option<u64>)) -> Option<f64>,
        slope: fn(&CostSeries) -> f64,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let all: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().filter_map(|p| value(p).map(|v| (p.0 as f64, v))))
            .filter(|(_, v)| *v > 0.0)
            .collect();
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for (x, y) in &all {
            (x0, x1, y0, y1) = (x0.min(*x), x1.max(*x), y0.min(*y), y1.max(*y));
        }
        if all.is_empty() {
            (x0, x1, y0, y1) = (1.0, 2.0, 1.0, 2.0);
        }
        // The measured contexts label the x axis.
        let mut contexts: Vec<f64> = all.iter().map(|p| p.0).collect();
        contexts.sort_by(f64::total_cmp);
        contexts.dedup();
        let mut chart = ChartBuilder::on(area)
            .caption(name, (FONT, 16))
            .margin(14)
            .x_label_area_size(34)
            .y_label_area_size(64)
            .build_cartesian_2d(
                (x0 / 1.2..x1 * 1.2).log_scale().with_key_points(contexts),
                (y0 / 1.5..y1 * 1.5).log_scale(),
            )?;
        chart
            .configure_mesh()
            .x_desc("context length (positions)")
            .label_style((FONT, 12))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| {
                if *y >= 10.0 {
                    format!("{y:.0}")
                } else {
                    format!("{y:.2}")
                }
            })
            .light_line_style(RGBColor(0xf3, 0xf4, 0xf7))
            .draw()?;
        for (i, s) in self.series.iter().enumerate() {
            let [r, g, b] = SERIES[i % SERIES.len()];
            let color = RGBColor(r, g, b);
            let line: Vec<(f64, f64)> = s
                .points
                .iter()
                .filter_map(|p| value(p).map(|v| (p.0 as f64, v)))
                .filter(|(_, v)| *v > 0.0)
                .collect();
            if line.is_empty() {
                continue;
            }
            let label = format!("{} (exponent {:.2})", s.name, slope(s));
            chart
                .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
            chart.draw_series(line.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(0xd9, 0xdd, 0xe5))
            .label_font((FONT, 12))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_figure_draws() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cost.png");
        let series = |name: &str, p: f64| CostSeries {
            name: name.into(),
            points: [64usize, 128, 256]
                .iter()
                .map(|&c| (c, (c as f64).powf(p) / 100.0, Some((c * c) as u64)))
                .collect(),
            time_exponent: p,
            memory_exponent: Some(2.0),
        };
        CostFigure {
            title: "test".into(),
            series: vec![series("full", 2.0), series("linear", 1.0)],
        }
        .write_png(&path)
        .unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() > 5_000);
    }
}
