//! The model's forward pass that also returns every layer's attention weights, for looking
//! inside it (`ember attention`).

use burn::tensor::{Int, Tensor};

use crate::gpt::Gpt;

impl Gpt {
    /// [`forward`](Self::forward), also returning every layer's attention weights: the
    /// softmax rows each head used (linear attention's implied ones), as the same code
    /// computes them in training.
    ///
    /// # Shapes
    /// - tokens: `[batch, seq]` → (`[batch, seq, vocab]`, `n_layer` × `[batch, n_head, seq, seq]`)
    pub fn forward_with_attention(&self, tokens: Tensor<2, Int>) -> (Tensor<3>, Vec<Tensor<4>>) {
        let mut x = self.wte.forward(tokens);
        let mut weights = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            let (y, w) = block.forward_with_weights(x, &self.tables);
            x = y;
            weights.push(w);
        }
        (self.head(self.ln_f.forward(x)), weights)
    }
}
