//! Backward passes of the fused operations, for Burn's autodiff backend.
//!
//! Each forward records what its backward needs (through Burn's checkpointer, so activation
//! recomputation strategies keep working) and computes on the inner backend; each backward
//! computes the gradients with the fused kernels of the inner backend.

use burn::backend::TensorMetadata;
use burn::backend::tensor::FloatTensor;
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
}

/// A view with the last two axes swapped (no copy on flex: the kernels read strides).
fn transpose_last<B: KernelOps>(t: FloatTensor<B>) -> FloatTensor<B> {
    let rank = t.shape().num_dims();
    B::float_swap_dims(t, rank - 2, rank - 1)
}
