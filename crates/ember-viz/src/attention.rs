//! The attention explorer: one page with every head's attention on a prompt at every kept
//! checkpoint, and a PNG of every head at one checkpoint.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use plotters::prelude::*;
use serde::Serialize;
use serde_json::json;

use crate::error::VizError;
use crate::figure::{self, FONT, MASKED, Pixels};
use crate::page::{self, CSS};

const TEMPLATE: &str = include_str!("../assets/attention.html");
const SCRIPT: &str = include_str!("../assets/attention.js");

/// What a layer attends with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Layer {
    /// Softmax over every earlier position.
    Causal,
    /// Softmax over the last `window` positions.
    SlidingWindow {
        /// Positions each query sees, itself included.
        window: usize,
    },
    /// Linear attention (implied weights).
    Linear,
}

impl Layer {
    /// Whether this layer's mask hides key `j` from query `i`.
    pub fn hides(&self, i: usize, j: usize) -> bool {
        j > i || matches!(*self, Layer::SlidingWindow { window } if i - j >= window)
    }
}

/// One checkpoint's attention on the prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointAttention {
    /// Its step.
    pub step: u64,
    /// Its validation loss, if it was evaluated.
    pub val_loss: Option<f64>,
    /// `[layer][head]`, each `[seq · seq]` row-major, row `i` query `i`'s weights.
    pub weights: Vec<Vec<Vec<f32>>>,
    /// Attention rollout through each layer, `[layer]` × `[seq · seq]`.
    pub rollout: Vec<Vec<f32>>,
    /// `[layer][head]`: entropy, mean distance, previous-token share, first-token share, self
    /// share.
    pub stats: Vec<Vec<[f64; 5]>>,
    /// Next-token candidates after the prompt (all ids, or the highest-scoring ones for a large
    /// vocabulary) and their logits.
    pub next_ids: Vec<u32>,
    /// Logits of `next_ids`.
    pub next_logits: Vec<f32>,
}

/// Everything the explorer page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionPage {
    /// The run directory, as given.
    pub run: String,
    /// A remark on the prompt (e.g. that it was cropped to the context).
    pub note: Option<String>,
    /// Each prompt token's text.
    pub tokens: Vec<String>,
    /// The prompt's token ids.
    pub ids: Vec<u32>,
    /// Texts of the next-token candidates' ids.
    pub vocab_text: BTreeMap<u32, String>,
    /// Query heads per layer.
    pub n_head: usize,
    /// Key/value heads per layer.
    pub n_kv_head: usize,
    /// What each layer attends with.
    pub layers: Vec<Layer>,
    /// Every kept checkpoint, in step order.
    pub checkpoints: Vec<CheckpointAttention>,
    /// The checkpoint shown first.
    pub selected: usize,
}

/// The byte that stores weight `w` in the page: `round(255·√w)`, which keeps small weights
/// visible at 8 bits.
fn quantise(w: f32) -> u8 {
    (255.0 * w.clamp(0.0, 1.0).sqrt()).round() as u8
}

/// The lower triangles (row `i`: keys `0..=i`) of `[seq · seq]` matrices, quantised, in order.
fn packed<'a>(matrices: impl Iterator<Item = &'a Vec<f32>>, seq: usize) -> String {
    let mut bytes = Vec::new();
    for m in matrices {
        for i in 0..seq {
            bytes.extend(m[i * seq..=i * seq + i].iter().map(|&w| quantise(w)));
        }
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl AttentionPage {
    /// Positions of the prompt.
    pub fn seq(&self) -> usize {
        self.tokens.len()
    }

    /// The page as one self-contained HTML document.
    pub fn html(&self) -> String {
        let seq = self.seq();
        let checkpoints: Vec<serde_json::Value> = self
            .checkpoints
            .iter()
            .map(|c| {
                json!({
                    "step": c.step,
                    "val_loss": c.val_loss,
                    "weights": packed(c.weights.iter().flatten(), seq),
                    "rollout": packed(c.rollout.iter(), seq),
                    "stats": c.stats,
                    "next_ids": c.next_ids,
                    "next_logits": c.next_logits,
                })
            })
            .collect();
        let data = json!({
            "run": self.run,
            "note": self.note,
            "tokens": self.tokens,
            "ids": self.ids,
            "vocab_text": self.vocab_text,
            "n_layer": self.layers.len(),
            "n_head": self.n_head,
            "n_kv_head": self.n_kv_head,
            "seq": seq,
            "layers": self.layers,
            "checkpoints": checkpoints,
            "selected": self.selected,
        });
        page::fill(
            TEMPLATE,
            &[
                ("TITLE", &page::escape(&self.run)),
                ("CSS", CSS),
                ("DATA", &page::script_json(&data)),
                ("JS", SCRIPT),
            ],
        )
    }

    /// Writes [`html`](Self::html) to `path`.
    pub fn write_html(&self, path: &Path) -> Result<(), VizError> {
        page::write_atomic(path, self.html().as_bytes())
    }

    /// Draws the layers × heads grid of checkpoint `index` (√-scaled viridis, masked cells
    /// grey) with labels, and writes it to `path` as PNG.
    pub fn write_png(&self, index: usize, path: &Path) -> Result<(), VizError> {
        let c = &self.checkpoints[index];
        let (n_layer, n_head, seq) = (self.layers.len() as u32, self.n_head as u32, self.seq());
        let cell = (1200 / n_head).clamp(64, 160);
        let (gap, caption, left, top, margin) = (8, 16, 112, 62, 16);
        let width = left + n_head * (cell + gap) + margin;
        let height = top + n_layer * (cell + gap + caption) + margin;
        let mut pixels = Pixels::new(width, height);
        for (l, layer) in c.weights.iter().enumerate() {
            for (h, w) in layer.iter().enumerate() {
                let (x0, y0) = (left + h as u32 * (cell + gap), top + l as u32 * (cell + gap + caption));
                for py in 0..cell {
                    let i = (py as usize * seq) / cell as usize;
                    for px in 0..cell {
                        let j = (px as usize * seq) / cell as usize;
                        let color = if self.layers[l].hides(i, j) {
                            MASKED
                        } else {
                            figure::viridis((w[i * seq + j] as f64).sqrt())
                        };
                        pixels.set(x0 + px, y0 + py, color);
                    }
                }
            }
        }
        figure::register_font();
        let draw_error = figure::draw_error(path);
        {
            let (w, h) = (pixels.width, pixels.height);
            let root = BitMapBackend::with_buffer(&mut pixels.rgb, (w, h)).into_drawing_area();
            let font = |size: u32| (FONT, size).into_font().color(&RGBColor(0x1d, 0x23, 0x30));
            let muted = |size: u32| (FONT, size).into_font().color(&RGBColor(0x5b, 0x64, 0x75));
            let val = c.val_loss.map_or(String::new(), |v| format!(", val loss {v:.4}"));
            let title = format!("Attention in {}: step {}{val}, {seq} prompt tokens", self.run, c.step);
            root.draw(&Text::new(title, (margin as i32, 14), font(20)))
                .map_err(|e| draw_error(&e))?;
            let note = "rows: queries (first token at the top); columns: keys; colour: √weight (viridis), grey: masked";
            root.draw(&Text::new(note, (margin as i32, 38), muted(13)))
                .map_err(|e| draw_error(&e))?;
            let group = (self.n_head / self.n_kv_head.max(1)).max(1);
            for l in 0..n_layer {
                let y = (top + l * (cell + gap + caption) + cell / 2) as i32 - 8;
                let label = match self.layers[l as usize] {
                    Layer::Causal => format!("layer {l}"),
                    Layer::SlidingWindow { window } => format!("layer {l}\nwindow {window}"),
                    Layer::Linear => format!("layer {l}\nlinear"),
                };
                for (k, line) in label.lines().enumerate() {
                    root.draw(&Text::new(
                        line.to_string(),
                        (margin as i32, y + 16 * k as i32),
                        font(14),
                    ))
                    .map_err(|e| draw_error(&e))?;
                }
                for h in 0..n_head {
                    let x = (left + h * (cell + gap)) as i32;
                    let s = c.stats[l as usize][h as usize];
                    let kv = if group > 1 {
                        format!(" kv{}", h as usize / group)
                    } else {
                        String::new()
                    };
                    let cap = format!("h{h}{kv} prev {:.2} H {:.1}", s[2], s[0]);
                    let y = (top + l * (cell + gap + caption) + cell + 2) as i32;
                    root.draw(&Text::new(cap, (x, y), muted(12)))
                        .map_err(|e| draw_error(&e))?;
                }
            }
            root.present().map_err(|e| draw_error(&e))?;
        }
        pixels.save(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn page() -> AttentionPage {
        let prev = vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        let uniform = vec![1.0, 0.0, 0.0, 0.5, 0.5, 0.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0];
        let checkpoint = |step| CheckpointAttention {
            step,
            val_loss: Some(1.5),
            weights: vec![vec![prev.clone(), uniform.clone()]],
            rollout: vec![uniform.clone()],
            stats: vec![vec![[0.0, 0.67, 1.0, 0.5, 0.33], [0.6, 0.67, 0.42, 0.42, 0.42]]],
            next_ids: vec![0, 1, 2],
            next_logits: vec![1.0, 2.0, 0.5],
        };
        AttentionPage {
            run: "runs/x</script>".into(),
            note: None,
            tokens: vec!["a".into(), " ".into(), "\n".into()],
            ids: vec![0, 1, 2],
            vocab_text: [(0, "a".into()), (1, " ".into()), (2, "\n".into())].into(),
            n_head: 2,
            n_kv_head: 1,
            layers: vec![Layer::SlidingWindow { window: 2 }],
            checkpoints: vec![checkpoint(100), checkpoint(200)],
            selected: 1,
        }
    }

    #[test]
    fn weights_are_stored_on_a_square_root_scale() {
        assert_eq!((quantise(0.0), quantise(1.0), quantise(0.25)), (0, 255, 128));
        // lower triangles of a 2 × 2 matrix: 3 values
        let m = vec![1.0, 0.7, 0.25, 0.75];
        let b = base64::engine::general_purpose::STANDARD
            .decode(packed([&m].into_iter(), 2))
            .unwrap();
        assert_eq!(b, vec![255, 128, 221]);
    }

    #[test]
    fn the_page_is_self_contained_and_carries_every_checkpoint() {
        let html = page().html();
        assert!(html.starts_with("<!doctype html>"));
        assert!(!html.contains("{{"), "unfilled placeholder");
        assert!(
            !html.contains("http://") && !html.contains("https://") && !html.contains(" src="),
            "fetches nothing"
        );
        assert!(!html.contains("runs/x</script>"), "the run name is escaped");
        assert!(html.contains("\"step\":100") && html.contains("\"step\":200"));
    }

    #[test]
    fn masks_hide_the_future_and_what_a_window_leaves_out() {
        let w = Layer::SlidingWindow { window: 2 };
        assert!(w.hides(0, 1) && w.hides(2, 0) && !w.hides(2, 1));
        assert!(!Layer::Causal.hides(5, 0) && Layer::Causal.hides(0, 1));
    }

    #[test]
    fn the_png_has_a_cell_per_head() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grid.png");
        page().write_png(1, &path).unwrap();
        let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let info = decoder.read_info().unwrap();
        let (w, h) = info.info().size();
        assert!(w > 2 * 160 && h > 160, "{w}×{h}");
    }
}
