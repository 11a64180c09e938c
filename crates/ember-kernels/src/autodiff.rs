//! Backward passes of the fused operations, for Burn's autodiff backend.
//!
//! Each forward records what its backward needs (through Burn's checkpointer, so activation
//! recomputation strategies keep working) and computes on the inner backend; each backward
//! computes the gradients with the fused kernels of the inner backend.

use burn::backend::TensorMetadata;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::CheckpointStrategy;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind, binary, unary};
use burn_autodiff::{Autodiff, NodeId};

use crate::ops::KernelOps;

type AdTensor<B, C> = FloatTensor<Autodiff<B, C>>;

impl<B: KernelOps, C: CheckpointStrategy> KernelOps for Autodiff<B, C> {
    fn ember_matmul(lhs: AdTensor<B, C>, rhs: AdTensor<B, C>) -> AdTensor<B, C> {
        #[derive(Debug)]
        struct Matmul;

        impl<B: KernelOps> Backward<B, 2> for Matmul {
            type State = (Option<NodeId>, Option<NodeId>);

            fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
                let (lhs, rhs) = ops.state;
                let lhs: Option<FloatTensor<B>> = lhs.map(|id| checkpointer.retrieve_node_output(id));
                let rhs: Option<FloatTensor<B>> = rhs.map(|id| checkpointer.retrieve_node_output(id));
                binary::<B, _, _>(
                    ops.parents,
                    ops.node,
                    grads,
                    // ∂L/∂lhs = ∂L/∂out · rhsᵀ
                    |grad| B::ember_matmul(grad, transpose_last::<B>(rhs.expect("kept for lhs's gradient"))),
                    // ∂L/∂rhs = lhsᵀ · ∂L/∂out
                    |grad| B::ember_matmul(transpose_last::<B>(lhs.expect("kept for rhs's gradient")), grad),
                );
            }
        }

        let (lhs_tracked, rhs_tracked) = (lhs.is_tracked(), rhs.is_tracked());
        match Matmul.prepare::<C>([lhs.node(), rhs.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let lhs_state = rhs_tracked.then(|| prep.checkpoint(&lhs));
                let rhs_state = lhs_tracked.then(|| prep.checkpoint(&rhs));
                prep.finish(
                    (lhs_state, rhs_state),
                    B::ember_matmul(lhs.into_primitive(), rhs.into_primitive()),
                )
            }
            OpsKind::UnTracked(prep) => prep.finish(B::ember_matmul(lhs.into_primitive(), rhs.into_primitive())),
        }
    }

    fn ember_linear(x: AdTensor<B, C>, w: AdTensor<B, C>, b: AdTensor<B, C>) -> AdTensor<B, C> {
        #[derive(Debug)]
        struct Linear;

        impl<B: KernelOps> Backward<B, 3> for Linear {
            type State = (Option<FloatTensor<B>>, Option<FloatTensor<B>>);

            fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
                let (x, w) = ops.state;
                let [node_x, node_w, node_b] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                if let Some(node) = node_x {
                    // ∂L/∂x = ∂L/∂y · wᵀ
                    let w = transpose_last::<B>(w.expect("kept for x's gradient"));
                    grads.register::<B>(node.id, B::ember_matmul(grad.clone(), w));
                }
                if let Some(node) = node_w {
                    // ∂L/∂w = xᵀ · ∂L/∂y
                    let x = transpose_last::<B>(x.expect("kept for w's gradient"));
                    grads.register::<B>(node.id, B::ember_matmul(x, grad.clone()));
                }
                if let Some(node) = node_b {
                    // ∂L/∂b = Σ_rows ∂L/∂y
                    grads.register::<B>(node.id, B::ember_sum_rows(grad));
                }
            }
        }

        let (x_tracked, w_tracked) = (x.is_tracked(), w.is_tracked());
        match Linear
            .prepare::<C>([x.node(), w.node(), b.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, w, b) = (x.into_primitive(), w.into_primitive(), b.into_primitive());
                let state = (w_tracked.then(|| x.clone()), x_tracked.then(|| w.clone()));
                prep.finish(state, B::ember_linear(x, w, b))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::ember_linear(
                x.into_primitive(),
                w.into_primitive(),
                b.into_primitive(),
            )),
        }
    }

    fn ember_sum_rows(g: AdTensor<B, C>) -> AdTensor<B, C> {
        // Used by backward passes only: the result is a constant.
        constant::<B, C>(B::ember_sum_rows(g.into_primitive()))
    }

    fn ember_gelu(x: AdTensor<B, C>) -> AdTensor<B, C> {
        #[derive(Debug)]
        struct Gelu;

        impl<B: KernelOps> Backward<B, 1> for Gelu {
            type State = NodeId;

            fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
                let x: FloatTensor<B> = checkpointer.retrieve_node_output(ops.state);
                unary::<B, _>(ops.parents, ops.node, grads, |grad| B::ember_gelu_backward(x, grad));
            }
        }

        match Gelu.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let state = prep.checkpoint(&x);
                prep.finish(state, B::ember_gelu(x.into_primitive()))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::ember_gelu(x.into_primitive())),
        }
    }

    fn ember_gelu_backward(x: AdTensor<B, C>, grad: AdTensor<B, C>) -> AdTensor<B, C> {
        // Second derivatives are not supported: the result is a constant.
        AdTensor::<B, C>::new(B::ember_gelu_backward(x.into_primitive(), grad.into_primitive()))
    }

    fn ember_layer_norm(x: AdTensor<B, C>, weight: AdTensor<B, C>, bias: AdTensor<B, C>, eps: f64) -> AdTensor<B, C> {
        #[derive(Debug)]
        struct LayerNorm;

        impl<B: KernelOps> Backward<B, 3> for LayerNorm {
            type State = (NodeId, NodeId, f64);

            fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
                let (x, weight, eps) = ops.state;
                let x: FloatTensor<B> = checkpointer.retrieve_node_output(x);
                let weight: FloatTensor<B> = checkpointer.retrieve_node_output(weight);
                let [node_x, node_w, node_b] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (dx, dw, db) = B::ember_layer_norm_backward(x, weight, grad, eps);
                if let Some(node) = node_x {
                    grads.register::<B>(node.id, dx);
                }
                if let Some(node) = node_w {
                    grads.register::<B>(node.id, dw);
                }
                if let Some(node) = node_b {
                    grads.register::<B>(node.id, db);
                }
            }
        }

        match LayerNorm
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&x), prep.checkpoint(&weight), eps);
                prep.finish(
                    state,
                    B::ember_layer_norm(x.into_primitive(), weight.into_primitive(), bias.into_primitive(), eps),
                )
            }
            OpsKind::UnTracked(prep) => prep.finish(B::ember_layer_norm(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
                eps,
            )),
        }
    }

    fn ember_layer_norm_backward(
        x: AdTensor<B, C>,
        weight: AdTensor<B, C>,
        grad: AdTensor<B, C>,
        eps: f64,
    ) -> (AdTensor<B, C>, AdTensor<B, C>, AdTensor<B, C>) {
        // Second derivatives are not supported: the results are constants.
        let (dx, dw, db) =
            B::ember_layer_norm_backward(x.into_primitive(), weight.into_primitive(), grad.into_primitive(), eps);
        (
            AdTensor::<B, C>::new(dx),
            AdTensor::<B, C>::new(dw),
            AdTensor::<B, C>::new(db),
        )
    }

    fn ember_softmax(scores: AdTensor<B, C>, bias: AdTensor<B, C>, scale: f32) -> AdTensor<B, C> {
        #[derive(Debug)]
        struct Softmax;

        impl<B: KernelOps> Backward<B, 1> for Softmax {
            type State = (FloatTensor<B>, f32);

            fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
                let (probs, scale) = ops.state;
                unary::<B, _>(ops.parents, ops.node, grads, |grad| {
                    B::ember_softmax_backward(probs, grad, scale)
                });
            }
        }

        // The mask bias is a constant: only the scores get a gradient.
        let node = scores.node();
        let probs = B::ember_softmax(scores.into_primitive(), bias.into_primitive(), scale);
        match Softmax.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((probs.clone(), scale), probs),
            OpsKind::UnTracked(prep) => prep.finish(probs),
        }
    }

    fn ember_softmax_backward(probs: AdTensor<B, C>, grad: AdTensor<B, C>, scale: f32) -> AdTensor<B, C> {
        constant::<B, C>(B::ember_softmax_backward(
            probs.into_primitive(),
            grad.into_primitive(),
            scale,
        ))
    }

    fn ember_attention(
        q: AdTensor<B, C>,
        k: AdTensor<B, C>,
        v: AdTensor<B, C>,
        bias: AdTensor<B, C>,
        scale: f32,
    ) -> AdTensor<B, C> {
        #[derive(Debug)]
        struct Attention;

        impl<B: KernelOps> Backward<B, 3> for Attention {
            // q, k, v, bias, probabilities, scale
            #[allow(clippy::type_complexity)]
            type State = (
                FloatTensor<B>,
                FloatTensor<B>,
                FloatTensor<B>,
                FloatTensor<B>,
                FloatTensor<B>,
                f32,
            );

            fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
                let (q, k, v, bias, probs, scale) = ops.state;
                let grad = grads.consume::<B>(&ops.node);
                let (dq, dk, dv) = B::ember_attention_backward(q, k, v, bias, probs, grad, scale);
                for (parent, g) in ops.parents.into_iter().zip([dq, dk, dv]) {
                    if let Some(node) = parent {
                        grads.register::<B>(node.id, g);
                    }
                }
            }
        }

        // The mask bias is a constant: only q, k and v get gradients.
        match Attention
            .prepare::<C>([q.node(), k.node(), v.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (q, k, v, bias) = (
                    q.into_primitive(),
                    k.into_primitive(),
                    v.into_primitive(),
                    bias.into_primitive(),
                );
                let (out, probs) = B::ember_attention_probs(q.clone(), k.clone(), v.clone(), bias.clone(), scale);
                prep.finish((q, k, v, bias, probs, scale), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::ember_attention(
                q.into_primitive(),
                k.into_primitive(),
                v.into_primitive(),
                bias.into_primitive(),
                scale,
            )),
        }
    }

    fn ember_attention_probs(
        q: AdTensor<B, C>,
        k: AdTensor<B, C>,
        v: AdTensor<B, C>,
        bias: AdTensor<B, C>,
        scale: f32,
    ) -> (AdTensor<B, C>, AdTensor<B, C>) {
        let (out, probs) = B::ember_attention_probs(
            q.into_primitive(),
            k.into_primitive(),
            v.into_primitive(),
            bias.into_primitive(),
            scale,
        );
        (constant::<B, C>(out), constant::<B, C>(probs))
    }

    fn ember_attention_backward(
        q: AdTensor<B, C>,
        k: AdTensor<B, C>,
        v: AdTensor<B, C>,
        bias: AdTensor<B, C>,
        probs: AdTensor<B, C>,
        grad: AdTensor<B, C>,
        scale: f32,
    ) -> (AdTensor<B, C>, AdTensor<B, C>, AdTensor<B, C>) {
        // Second derivatives are not supported: the results are constants.
        let (dq, dk, dv) = B::ember_attention_backward(
            q.into_primitive(),
            k.into_primitive(),
            v.into_primitive(),
            bias.into_primitive(),
            probs.into_primitive(),
            grad.into_primitive(),
            scale,
        );
        (constant::<B, C>(dq), constant::<B, C>(dk), constant::<B, C>(dv))
    }

    fn ember_self_attention(
        qkv: AdTensor<B, C>,
        cos: AdTensor<B, C>,
        sin: AdTensor<B, C>,
        bias: AdTensor<B, C>,
        heads: usize,
        scale: f32,
    ) -> AdTensor<B, C> {
        #[derive(Debug)]
        struct SelfAttention;

        impl<B: KernelOps> Backward<B, 1> for SelfAttention {
            // qkv, cos, sin, bias, probabilities, heads, scale
            #[allow(clippy::type_complexity)]
            type State = (
                FloatTensor<B>,
                FloatTensor<B>,
                FloatTensor<B>,
                FloatTensor<B>,
                FloatTensor<B>,
                usize,
                f32,
            );

            fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
                let (qkv, cos, sin, bias, probs, heads, scale) = ops.state;
                unary::<B, _>(ops.parents, ops.node, grads, |grad| {
                    B::ember_self_attention_backward(qkv, cos, sin, bias, probs, grad, heads, scale)
                });
            }
        }

        // The tables and the mask bias are constants: only qkv gets a gradient.
        match SelfAttention.prepare::<C>([qkv.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (qkv, cos, sin, bias) = (
                    qkv.into_primitive(),
                    cos.into_primitive(),
                    sin.into_primitive(),
                    bias.into_primitive(),
                );
                let (out, probs) =
                    B::ember_self_attention_probs(qkv.clone(), cos.clone(), sin.clone(), bias.clone(), heads, scale);
                prep.finish((qkv, cos, sin, bias, probs, heads, scale), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::ember_self_attention(
                qkv.into_primitive(),
                cos.into_primitive(),
                sin.into_primitive(),
                bias.into_primitive(),
                heads,
                scale,
            )),
        }
    }

    fn ember_self_attention_probs(
        qkv: AdTensor<B, C>,
        cos: AdTensor<B, C>,
        sin: AdTensor<B, C>,
        bias: AdTensor<B, C>,
        heads: usize,
        scale: f32,
    ) -> (AdTensor<B, C>, AdTensor<B, C>) {
        let (out, probs) = B::ember_self_attention_probs(
            qkv.into_primitive(),
            cos.into_primitive(),
            sin.into_primitive(),
            bias.into_primitive(),
            heads,
            scale,
        );
        (constant::<B, C>(out), constant::<B, C>(probs))
    }

    fn ember_self_attention_backward(
        qkv: AdTensor<B, C>,
        cos: AdTensor<B, C>,
        sin: AdTensor<B, C>,
        bias: AdTensor<B, C>,
        probs: AdTensor<B, C>,
        grad: AdTensor<B, C>,
        heads: usize,
        scale: f32,
    ) -> AdTensor<B, C> {
        // Second derivatives are not supported: the result is a constant.
        constant::<B, C>(B::ember_self_attention_backward(
            qkv.into_primitive(),
            cos.into_primitive(),
            sin.into_primitive(),
            bias.into_primitive(),
            probs.into_primitive(),
            grad.into_primitive(),
            heads,
            scale,
        ))
    }

    fn ember_cross_entropy(logits: AdTensor<B, C>, targets: IntTensor<Self>) -> AdTensor<B, C> {
        #[derive(Debug)]
        struct CrossEntropy;

        impl<B: KernelOps> Backward<B, 1> for CrossEntropy {
            type State = (FloatTensor<B>, IntTensor<B>);

            fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
                let (probs, targets) = ops.state;
                unary::<B, _>(ops.parents, ops.node, grads, |grad| {
                    B::ember_cross_entropy_backward(probs, targets, grad)
                });
            }
        }

        let node = logits.node();
        let (loss, probs) = B::ember_cross_entropy_probs(logits.into_primitive(), targets.clone());
        match CrossEntropy.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((probs, targets), loss),
            OpsKind::UnTracked(prep) => prep.finish(loss),
        }
    }

    fn ember_cross_entropy_probs(logits: AdTensor<B, C>, targets: IntTensor<Self>) -> (AdTensor<B, C>, AdTensor<B, C>) {
        let (loss, probs) = B::ember_cross_entropy_probs(logits.into_primitive(), targets);
        (constant::<B, C>(loss), constant::<B, C>(probs))
    }

    fn ember_cross_entropy_backward(
        probs: AdTensor<B, C>,
        targets: IntTensor<Self>,
        grad: AdTensor<B, C>,
    ) -> AdTensor<B, C> {
        constant::<B, C>(B::ember_cross_entropy_backward(
            probs.into_primitive(),
            targets,
            grad.into_primitive(),
        ))
    }

    fn ember_adamw(
        theta: AdTensor<B, C>,
        grad: AdTensor<B, C>,
        m: AdTensor<B, C>,
        v: AdTensor<B, C>,
        constants: [f32; 8],
    ) -> (AdTensor<B, C>, AdTensor<B, C>, AdTensor<B, C>) {
        // The optimiser works outside the graph: the results are constants.
        let (t, m, v) = B::ember_adamw(
            theta.into_primitive(),
            grad.into_primitive(),
            m.into_primitive(),
            v.into_primitive(),
            constants,
        );
        (constant::<B, C>(t), constant::<B, C>(m), constant::<B, C>(v))
    }

    fn ember_cached_self_attention(
        qkv: AdTensor<B, C>,
        cos: AdTensor<B, C>,
        sin: AdTensor<B, C>,
        keys: AdTensor<B, C>,
        values: AdTensor<B, C>,
        bias: AdTensor<B, C>,
        past: usize,
        heads: usize,
        scale: f32,
    ) -> (AdTensor<B, C>, AdTensor<B, C>, AdTensor<B, C>) {
        // Generation, outside the graph: the results are constants.
        let (out, keys, values) = B::ember_cached_self_attention(
            qkv.into_primitive(),
            cos.into_primitive(),
            sin.into_primitive(),
            keys.into_primitive(),
            values.into_primitive(),
            bias.into_primitive(),
            past,
            heads,
            scale,
        );
        (constant::<B, C>(out), constant::<B, C>(keys), constant::<B, C>(values))
    }

    fn ember_sum_squares(x: AdTensor<B, C>) -> AdTensor<B, C> {
        // Used on gradients, outside the graph.
        constant::<B, C>(B::ember_sum_squares(x.into_primitive()))
    }

    fn ember_add_sum_squares(a: AdTensor<B, C>, b: AdTensor<B, C>) -> (AdTensor<B, C>, AdTensor<B, C>) {
        // Used on gradients, outside the graph.
        let (sum, squares) = B::ember_add_sum_squares(a.into_primitive(), b.into_primitive());
        (constant::<B, C>(sum), constant::<B, C>(squares))
    }
}

/// A constant (untracked) autodiff tensor around an inner value.
fn constant<B: KernelOps, C: CheckpointStrategy>(t: FloatTensor<B>) -> AdTensor<B, C> {
    AdTensor::<B, C>::new(t)
}

/// A view with the last two axes swapped (no copy on flex: the kernels read strides).
fn transpose_last<B: KernelOps>(t: FloatTensor<B>) -> FloatTensor<B> {
    let rank = t.shape().num_dims();
    B::float_swap_dims(t, rank - 2, rank - 1)
}
