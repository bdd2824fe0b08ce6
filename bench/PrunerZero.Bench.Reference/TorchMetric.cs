// The reference path, op for op: Pruner-Zero's lib/gptree.py evaluates a metric tree node by node with
// PyTorch ops (every node a full-size temporary), and lib/prune.py (after Wanda) selects per row with
//   W_mask = (torch.zeros_like(W_metric) == 1)
//   sort_res = torch.sort(W_metric, dim=-1, stable=True)
//   indices = sort_res[1][:, :int(W_metric.shape[1] * sparsity)]
//   W_mask.scatter_(1, indices, True)
// Here the same ops run through TorchSharp (libtorch, the library PyTorch wraps), so the timing is the
// reference's tensor work without Python's interpreter overhead (which is small next to full-size ops).
// W enters as torch.abs(weight) computed once (prune.py: W = torch.abs(subset[name].weight.data)).
using PrunerZero.Kernels;
using PrunerZero.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Bench.Reference;

public static class TorchMetric
{
    /// <summary>gptree.compute_tree: W, G are (R, K) tensors, X is (1, K), broadcast by the binary ops.</summary>
    public static Tensor Eval(Expr e, Tensor W, Tensor G, Tensor X) => e.Op switch
    {
        Op.W => W,
        Op.G => G,
        Op.X => X,
        Op.Sqr => Sqr(Eval(e.Children[0], W, G, X)),
        Op.Pow => Eval(e.Children[0], W, G, X).Pow(2),
        Op.Neg => -Eval(e.Children[0], W, G, X),
        Op.Abs => torch.abs(Eval(e.Children[0], W, G, X)),
        Op.Tanh => torch.tanh(Eval(e.Children[0], W, G, X)),
        Op.Skp => Eval(e.Children[0], W, G, X),
        Op.Log => torch.log(torch.abs(Eval(e.Children[0], W, G, X)).Plus(0.001)),
        Op.Sqrt => torch.sqrt(torch.abs(Eval(e.Children[0], W, G, X))),
        Op.Exp => torch.exp(ClampMax(Eval(e.Children[0], W, G, X), 100)),
        Op.Mms => Mms(Eval(e.Children[0], W, G, X)),
        Op.Zsn => Zsn(Eval(e.Children[0], W, G, X)),
        Op.Add => Binary(e, W, G, X, (a, b) => a.Plus(b)),
        Op.Sub => Binary(e, W, G, X, (a, b) => a - b),
        Op.Mul => Binary(e, W, G, X, (a, b) => a * b),
        Op.Div => Binary(e, W, G, X, (a, b) => a / torch.norm(b)),
        // pdiv is this project's addition (not in gptree.py): element-wise protected division.
        Op.PDiv => Binary(e, W, G, X, (a, b) => torch.where(LessThan(torch.abs(b), 1e-12), a, a / b)),
        _ => throw new ArgumentException($"unknown op {e.Op}"),
    };

    static Tensor Sqr(Tensor x) => x * x;

    // Explicit, disposed Scalars (TorchSharp leaves implicitly converted ones to the finalizer).
    static Tensor ClampMax(Tensor x, double max)
    {
        using var m = max.ToScalar();
        return x.clamp(max: m);
    }

    static Tensor LessThan(Tensor x, double v)
    {
        using var s = v.ToScalar();
        return x.lt(s);
    }

    /// <summary>gptree.mms: (x - x.min()) / (x.max() - x.min()), min computed twice as written there.</summary>
    static Tensor Mms(Tensor x) => (x - x.min()) / (x.max() - x.min());

    /// <summary>gptree.zsn: (x - x.mean()) / x.std(); torch's std is the unbiased (N−1) one.</summary>
    static Tensor Zsn(Tensor x) => (x - x.mean()) / x.std();

    /// <summary>gptree's add/sub/mul/div: torch.broadcast_tensors (views) then the op.</summary>
    static Tensor Binary(Expr e, Tensor W, Tensor G, Tensor X, Func<Tensor, Tensor, Tensor> op)
    {
        var a = Eval(e.Children[0], W, G, X);
        var b = Eval(e.Children[1], W, G, X);
        var ab = torch.broadcast_tensors(a, b);
        return op(ab[0], ab[1]);
    }

    /// <summary>Wanda's unstructured per-row selection: a bool mask, true = pruned (the k lowest of each row).</summary>
    public static Tensor Mask(Tensor metric, double sparsity)
    {
        var mask = torch.zeros_like(metric).EqualTo(1);
        var (_, indices) = torch.sort(metric, dim: -1, stable: true);
        long k = (long)(metric.shape[1] * sparsity);
        var lowest = indices[.., ..(int)k];
        // TorchSharp binds only scatter_(dim, index, src Tensor), not the value overload Python calls; a
        // broadcast view of one `true` (stride 0, nothing allocated) is the same write.
        using var truth = torch.ones([1, 1], dtype: ScalarType.Bool);
        mask.scatter_(1, lowest, truth.expand(lowest.shape));
        return mask;
    }

    /// <summary>The whole reference step for one layer: |weight|, the metric, the mask.</summary>
    public static Tensor ScoreAndMask(Expr e, Tensor weight, Tensor G, Tensor X, double sparsity)
    {
        var W = torch.abs(weight);
        var metric = Eval(e, W, G, X);
        return Mask(metric, sparsity);
    }
}
