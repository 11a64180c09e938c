//! What the PNG figures share: an RGB pixel buffer, the embedded font, the colour map, and the
//! PNG encoding.

use std::path::Path;
use std::sync::Once;

use plotters::style::FontStyle;

use crate::error::VizError;
use crate::page::write_atomic;

/// The font family the figures draw text in (DejaVu Sans, embedded).
pub(crate) const FONT: &str = "sans-serif";

/// Registers the embedded font with plotters, once per process.
pub(crate) fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is a fixed, valid TTF compiled into the binary.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
    });
}

/// The error of a drawing step of the figure written to `path`.
pub(crate) fn draw_error(path: &Path) -> impl Fn(&dyn std::fmt::Display) -> VizError + '_ {
    move |e| VizError::Draw {
        what: path.display().to_string(),
        message: e.to_string(),
    }
}

/// An RGB image, 3 bytes per pixel, rows top to bottom.
pub(crate) struct Pixels {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

impl Pixels {
    /// A white image.
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            rgb: vec![255; width as usize * height as usize * 3],
        }
    }

    /// Sets one pixel (ignored outside the image).
    pub fn set(&mut self, x: u32, y: u32, color: [u8; 3]) {
        if x < self.width && y < self.height {
            let at = (y as usize * self.width as usize + x as usize) * 3;
            self.rgb[at..at + 3].copy_from_slice(&color);
        }
    }

    /// Encodes the image as PNG and writes it to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<(), VizError> {
        let mut bytes = Vec::new();
        let draw_error = |e: png::EncodingError| VizError::Draw {
            what: path.display().to_string(),
            message: e.to_string(),
        };
        {
            let mut encoder = png::Encoder::new(&mut bytes, self.width, self.height);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().map_err(draw_error)?;
            writer.write_image_data(&self.rgb).map_err(draw_error)?;
        }
        write_atomic(path, &bytes)
    }
}

/// Matplotlib's viridis, sampled at 9 points (the explorer page interpolates the same ones).
const VIRIDIS: [[f64; 3]; 9] = [
    [68.0, 1.0, 84.0],
    [71.0, 44.0, 122.0],
    [59.0, 81.0, 139.0],
    [44.0, 113.0, 142.0],
    [33.0, 144.0, 141.0],
    [39.0, 173.0, 129.0],
    [92.0, 200.0, 99.0],
    [170.0, 220.0, 50.0],
    [253.0, 231.0, 37.0],
];

/// The colour of `x` in [0, 1] (clamped).
pub(crate) fn viridis(x: f64) -> [u8; 3] {
    let x = x.clamp(0.0, 1.0) * 8.0;
    let i = (x.floor() as usize).min(7);
    let f = x - i as f64;
    let mix = |c: usize| (VIRIDIS[i][c] * (1.0 - f) + VIRIDIS[i + 1][c] * f).round() as u8;
    [mix(0), mix(1), mix(2)]
}

/// The colour of a cell the attention mask hides.
pub(crate) const MASKED: [u8; 3] = [233, 236, 241];

/// Series colours (the report page uses the same).
pub(crate) const SERIES: [[u8; 3]; 8] = [
    [0x1c, 0x7e, 0xd6],
    [0xd9, 0x48, 0x0f],
    [0x2b, 0x8a, 0x3e],
    [0x86, 0x2e, 0x9c],
    [0xe6, 0x77, 0x00],
    [0x0b, 0x72, 0x85],
    [0xc2, 0x25, 0x5c],
    [0x49, 0x50, 0x57],
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viridis_runs_from_purple_to_yellow() {
        assert_eq!(viridis(0.0), [68, 1, 84]);
        assert_eq!(viridis(1.0), [253, 231, 37]);
        assert_eq!(viridis(0.5), [33, 144, 141]);
        assert_eq!(viridis(-1.0), viridis(0.0));
    }

    #[test]
    fn a_saved_image_is_a_png_of_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.png");
        let mut p = Pixels::new(3, 2);
        p.set(1, 1, [10, 20, 30]);
        p.save(&path).unwrap();
        let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (3, 2));
        assert_eq!(&buf[(3 + 1) * 3..(3 + 1) * 3 + 3], &[10, 20, 30]);
    }
}
