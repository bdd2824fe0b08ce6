using System.Numerics;
using System.Runtime.InteropServices;
using PrunerZero.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Pruning;

/// <summary>What happens to the weights a mask keeps: nothing, or the OBS update of SparseGPT's column sweep.</summary>
public enum WeightUpdate { None, Obs }

/// <summary>
/// A pruning method: a symbolic metric chooses the mask (per row or N:M, through the Kernels back end), with
/// or without the OBS update of the kept weights; or SparseGPT, whose sweep chooses the mask itself.
/// </summary>
public sealed record PruneMethod(Expr Metric, WeightUpdate Update, bool SparseGptMask)
{
    public const string SparseGptName = "sparsegpt";

    /// <summary>SparseGPT (Frantar and Alistarh 2023). Metric is a placeholder that reads neither X nor G.</summary>
    public static readonly PruneMethod SparseGpt = new(Metrics.Magnitude, WeightUpdate.Obs, true);

    public static PruneMethod Of(Expr metric, WeightUpdate update = WeightUpdate.None) => new(metric, update, false);

    /// <summary>"sparsegpt" (case-insensitive), else a metric name or expression (<see cref="Metrics.Resolve"/>) with the update.</summary>
    public static PruneMethod Resolve(string nameOrExpr, WeightUpdate update) =>
        string.Equals(nameOrExpr.Trim(), SparseGptName, StringComparison.OrdinalIgnoreCase) ? SparseGpt : Of(Metrics.Resolve(nameOrExpr), update);

    public static WeightUpdate ParseUpdate(string text) => text.ToLowerInvariant() switch
    {
        "none" => WeightUpdate.None,
        "obs" => WeightUpdate.Obs,
        _ => throw new PrunerZeroException($"{UserError.P("update")} must be none or obs, got '{text}'"),
    };

    public override string ToString() => SparseGptMask ? SparseGptName : Update == WeightUpdate.Obs ? $"{Metric} + obs" : Metric.ToString();
}

/// <summary>
/// SparseGPT's <c>fasterprune</c> (IST-DASLab/sparsegpt, as vendored in Wanda's lib/sparsegpt.py) on one float32
/// weight (R, K) and its Hessian H (K, K): dead inputs (H_ii = 0) get H_ii = 1 and their weights 0; H += 0.01 ·
/// mean(diag H) · I; Hinv = upper Cholesky factor of H⁻¹ (Cholesky, cholesky_inverse, Cholesky again). Columns
/// go in blocks of 128; within a block each column's pruning error err = (w − q) / Hinv_cc is compensated on the
/// block's later columns (w_j −= err · Hinv_cj), and once per block on all later columns as one matrix product
/// (W[:, i2:] −= Err1 · Hinv[i1:i2, i2:], the lazy batched update). Unstructured: the mask of each block is
/// chosen over all its rows at once, w² / Hinv_cc² ≤ the (⌊R·count·sparsity⌋ + 1)-th smallest (so rows are not
/// exactly at the target). N:M: at every m-th column each row prunes the n lowest w² / Hinv_cc² of the next m.
/// With a fixed mask (a metric's), the same sweep only updates the kept weights.
/// The inner per-column loop runs in C#, parallel over rows (rows are independent within a block); the
/// factorizations and the lazy update are TorchSharp (libtorch's LAPACK/BLAS).
/// </summary>
public static class SparseGpt
{
    public const int BlockSize = 128;
    public const double PercDamp = 0.01;

    /// <summary>Block size of the sweep: 128, or the largest multiple of m below it, so N:M groups never straddle a block.</summary>
    public static int Blocking(PruneTarget target) => target.IsNM ? Math.Max(target.M, BlockSize / target.M * target.M) : BlockSize;

    /// <summary>
    /// The inverse factor of a Hessian (not modified): Hinv (K, K) upper triangular, and which inputs are dead.
    /// A Hessian that is not finite or not positive definite after dampening is one clear error.
    /// </summary>
    public static (Tensor Hinv, bool[] Dead) InverseFactor(Tensor h, string name)
    {
        using var scope = NewDisposeScope();
        var H = h.to(ScalarType.Float32).clone();
        var diag = H.diagonal();   // a view: writes reach H
        using var one = 1.0.ToScalar();
        var deadT = diag.EqualTo(0);
        bool[] dead = deadT.data<bool>().ToArray();
        diag.masked_fill_(deadT, one);
        var damp = diag.mean().Times(PercDamp);
        diag.PlusInPlace(damp);
        if (!H.isfinite().all().item<bool>())
            throw new PrunerZeroException($"{name}: the Hessian of the calibration inputs has NaN or infinite entries (the calibration activations are not finite)");
        var (L, info) = linalg.cholesky_ex(H);
        int failed = info.item<int>();
        if (failed != 0)
            throw new PrunerZeroException($"{name}: the Hessian of the calibration inputs is not positive definite after dampening by {PercDamp}·mean(diag H) = {damp.item<float>():G4} " +
                $"(Cholesky fails at column {failed} of {H.shape[0]}); the calibration inputs are degenerate");
        H.Dispose();
        var inv = cholesky_inverse(L);
        L.Dispose();
        Tensor U;
        // torch.linalg.cholesky(H, upper=True) of the reference: TorchSharp binds the upper variant only as the
        // deprecated Tensor.cholesky(upper), which runs the same LAPACK potrf('U').
#pragma warning disable CS0618
        try { U = inv.cholesky(upper: true); }
#pragma warning restore CS0618
        catch (ExternalException e)
        {
            throw new PrunerZeroException($"{name}: the inverse Hessian is not positive definite in float32 (the calibration inputs are too ill-conditioned): {e.Message.Split('\n')[0]}");
        }
        return (U.MoveToOuterDisposeScope(), dead);
    }

    /// <summary>
    /// Prunes <paramref name="weight"/> (R, K), float32, contiguous, in place. <paramref name="fixedMask"/> null:
    /// SparseGPT chooses the mask; else R·K bytes, 1 = pruned (a metric's mask), and only the update runs.
    /// </summary>
    public static void Prune(Tensor weight, Tensor hinv, bool[] dead, PruneTarget target, ReadOnlySpan<byte> fixedMask, bool ownMask,
        int? blockSize = null)
    {
        if (weight.dtype != ScalarType.Float32 || !weight.is_contiguous() || weight.dim() != 2)
            throw new ArgumentException("SparseGpt.Prune needs a contiguous float32 (R, K) weight");
        int rows = (int)weight.shape[0], cols = (int)weight.shape[1];
        if (hinv.shape[0] != cols || hinv.shape[1] != cols || dead.Length != cols) throw new ArgumentException("Hinv must be (K, K)");
        if (!ownMask && fixedMask.Length != (long)rows * cols) throw new ArgumentException($"mask has {fixedMask.Length} entries, expected {(long)rows * cols}");
        if (target.IsNM && cols % target.M != 0)
            throw new PrunerZeroException($"N:M {target.N}:{target.M} needs the number of input columns ({cols}) to be a multiple of {target.M}");
        int bs = blockSize ?? Blocking(target);
        if (bs <= 0 || (target.IsNM && bs % target.M != 0)) throw new ArgumentException($"block size {bs} must be positive and a multiple of m");
        var w = MemoryMarshal.Cast<byte, float>(weight.bytes);
        for (int c = 0; c < cols; c++)
            if (dead[c]) for (int r = 0; r < rows; r++) w[r * cols + c] = 0f;
        var hi = hinv.contiguous();
        var hiAll = MemoryMarshal.Cast<byte, float>(hi.bytes);

        var w1 = new float[(long)rows * bs];
        var err = new float[(long)rows * bs];
        var mask1 = new byte[(long)rows * bs];
        var h1 = new float[bs * bs];
        for (int i1 = 0; i1 < cols; i1 += bs)
        {
            using var scope = NewDisposeScope();
            int i2 = Math.Min(i1 + bs, cols), count = i2 - i1;
            for (int r = 0; r < rows; r++) w.Slice(r * cols + i1, count).CopyTo(w1.AsSpan(r * count, count));
            for (int i = 0; i < count; i++) hiAll.Slice((i1 + i) * cols + i1, count).CopyTo(h1.AsSpan(i * count, count));
            var m1 = mask1.AsSpan(0, rows * count);
            if (!ownMask)
                for (int r = 0; r < rows; r++) fixedMask.Slice(r * cols + i1, count).CopyTo(m1.Slice(r * count, count));
            else if (!target.IsNM) BlockMask(w1, h1, rows, count, target.Sparsity, m1);
            else m1.Clear();

            SweepBlock(w1, err, mask1, h1, rows, count, ownMask && target.IsNM ? target : null);

            for (int r = 0; r < rows; r++) w1.AsSpan(r * count, count).CopyTo(w.Slice(r * cols + i1, count));
            if (i2 < cols)
            {
                var errT = tensor(err.AsSpan(0, rows * count).ToArray(), [rows, count]);
                weight.narrow(1, i2, cols - i2).addmm_(errT, hi.narrow(0, i1, count).narrow(1, i2, cols - i2), 1, -1);
            }
        }
        if (!ReferenceEquals(hi, hinv)) hi.Dispose();
    }

    /// <summary>The reference's unstructured rule for one block: tmp = w² / diag(Hinv1)²; prune tmp ≤ sort(tmp)[⌊numel·sparsity⌋].</summary>
    static void BlockMask(float[] w1, float[] h1, int rows, int count, double sparsity, Span<byte> mask)
    {
        var tmp = new float[rows * count];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < count; c++)
            {
                float x = w1[r * count + c], d = h1[c * count + c];
                tmp[r * count + c] = x * x / (d * d);
            }
        long k = (long)(tmp.Length * sparsity);   // Python's int(tmp.numel() * sparsity)
        float thresh;
        using (var t = tensor(tmp))
        {
            var (values, indices) = t.kthvalue(k + 1, 0);
            thresh = values.item<float>();
            values.Dispose(); indices.Dispose();
        }
        for (int i = 0; i < tmp.Length; i++) mask[i] = tmp[i] <= thresh ? (byte)1 : (byte)0;
    }

    /// <summary>
    /// The column loop of one block, row by row (each row's loop reads only that row): q = w or 0 by the mask,
    /// err = (w − q) / d, the row's later columns −= err · Hinv1[i, j]; w1 ends as Q1, err as Err1.
    /// For SparseGPT's N:M (<paramref name="nm"/>), at every m-th column the row's n lowest w² / d² of the next
    /// m columns are marked (ties to the lower column).
    /// </summary>
    static void SweepBlock(float[] w1, float[] err, byte[] mask1, float[] h1, int rows, int count, PruneTarget? nm)
    {
        Parallel.For(0, (rows + 63) / 64, chunk =>
        {
            Span<float> group = stackalloc float[nm?.M ?? 1];
            int rEnd = Math.Min(rows, (chunk + 1) * 64);
            for (int r = chunk * 64; r < rEnd; r++)
            {
                var row = w1.AsSpan(r * count, count);
                var mrow = mask1.AsSpan(r * count, count);
                var erow = err.AsSpan(r * count, count);
                for (int i = 0; i < count; i++)
                {
                    float d = h1[i * count + i];
                    if (nm != null && i % nm.M == 0)
                    {
                        for (int j = 0; j < nm.M; j++)
                        {
                            float x = row[i + j], dj = h1[(i + j) * count + i + j];
                            group[j] = x * x / (dj * dj);
                        }
                        for (int p = 0; p < nm.N; p++)
                        {
                            int lo = -1;
                            for (int j = 0; j < nm.M; j++)
                                if (mrow[i + j] == 0 && (lo < 0 || group[j] < group[lo])) lo = j;
                            mrow[i + lo] = 1;
                        }
                    }
                    float wv = row[i];
                    float q = mrow[i] != 0 ? 0f : wv;
                    float e = (wv - q) / d;
                    row[i] = q;
                    erow[i] = e;
                    if (e != 0) Axpy(row[(i + 1)..], h1.AsSpan(i * count + i + 1, count - i - 1), e);
                }
            }
        });
    }

    /// <summary>y −= e · x, element by element (a multiply then a subtract, as the reference's outer product and sub).</summary>
    static void Axpy(Span<float> y, ReadOnlySpan<float> x, float e)
    {
        int j = 0;
        if (Vector.IsHardwareAccelerated && y.Length >= Vector<float>.Count)
        {
            var ev = new Vector<float>(e);
            var yv = MemoryMarshal.Cast<float, Vector<float>>(y);
            var xv = MemoryMarshal.Cast<float, Vector<float>>(x);
            for (int v = 0; v < yv.Length; v++) yv[v] -= ev * xv[v];
            j = yv.Length * Vector<float>.Count;
        }
        for (; j < y.Length; j++) y[j] -= e * x[j];
    }
}

/// <summary>
/// The OBS update, a weight update of the sequential protocol (<see cref="Pruner.PruneSequential"/>): the block's
/// calibration forward feeds <see cref="Observe"/>, then each linear goes through <see cref="Apply"/> with the
/// metric's mask (or none, for SparseGPT, which chooses it). The inverse factor of a shared Hessian (Q/K/V,
/// Gate/Up) is made once and freed after the group's last linear.
/// </summary>
public sealed class ObsUpdate(bool choosesMask) : IWeightUpdate, IDisposable
{
    readonly HessianStats _h = new();
    readonly Dictionary<LinearKind, (Tensor Hinv, bool[] Dead)> _inv = new();
    public bool NeedsInputs => true;
    public bool ChoosesMask => choosesMask;
    public double Seconds { get; private set; }

    /// <summary>Refuses, before anything is pruned, what the sweep cannot do on this model: N:M with K not a multiple of m, Hessians beyond memory.</summary>
    public static void CheckModel(LlamaConfig c, PruneTarget target, long available, string method)
    {
        if (target.IsNM)
            foreach (var (k, cols) in new[] { ("q/k/v/gate/up_proj", c.HiddenSize), ("o_proj", c.NumHeads * c.HeadDim), ("down_proj", c.IntermediateSize) })
                if (cols % target.M != 0)
                    throw new PrunerZeroException($"{method}: N:M {target.N}:{target.M} needs every linear's input columns to be a multiple of {target.M}, but {k} has {cols}");
        HessianStats.CheckMemory(c, available, method);
    }

    public void BeginBlock() => Clear();

    public void Observe(LinearKind kind, Tensor input) => _h.Add(kind, input);

    public void Apply(Tensor weight, LinearKind kind, ReadOnlySpan<byte> mask, PruneTarget target, string name)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var g = HessianStats.Group(kind);
        if (!_inv.TryGetValue(g, out var f))
        {
            f = SparseGpt.InverseFactor(_h[kind], name);
            f.Hinv.DetachFromDisposeScope();   // the hook owns it across the group's linears (each pruned in its own scope)
            _h.Release(kind);
            _inv[g] = f;
        }
        SparseGpt.Prune(weight, f.Hinv, f.Dead, target, mask, choosesMask);
        if (kind is LinearKind.V or LinearKind.O or LinearKind.Up or LinearKind.Down && _inv.Remove(g, out var done)) done.Hinv.Dispose();
        Seconds += sw.Elapsed.TotalSeconds;
    }

    void Clear()
    {
        _h.Dispose();
        foreach (var f in _inv.Values) f.Hinv.Dispose();
        _inv.Clear();
    }

    public void Dispose() => Clear();
}
