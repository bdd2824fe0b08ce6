using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Pruning;

/// <summary>
/// H = (2 / nsamples) · Σ x xᵀ over the calibration tokens of each linear's input, float32, accumulated as
/// SparseGPT's <c>add_batch</c> does (a running average: H *= n / (n + b); n += b; x *= sqrt(2 / n); H += xᵀx,
/// b the windows of the batch). Q, K and V see one input, and so do Gate and Up (the contract of
/// <see cref="LlamaModel.BlockForward"/>), so one block holds four Hessians: QKV, O, GateUp, Down. The tensors
/// are owned here (detached from dispose scopes) and freed by <see cref="Dispose"/>.
/// </summary>
public sealed class HessianStats : IDisposable
{
    readonly Dictionary<LinearKind, Tensor> _h = new();
    readonly Dictionary<LinearKind, long> _n = new();

    /// <summary>The linear whose Hessian a kind shares (Q for K and V, Gate for Up).</summary>
    public static LinearKind Group(LinearKind k) => k switch
    {
        LinearKind.K or LinearKind.V => LinearKind.Q,
        LinearKind.Up => LinearKind.Gate,
        _ => k,
    };

    /// <summary>The block forward's hook: input (B, T, K) of the linear of this kind.</summary>
    public void Add(LinearKind kind, Tensor input)
    {
        if (Group(kind) != kind) return;   // the group's first linear already added this very input
        using var scope = NewDisposeScope();
        long cols = input.shape[^1], batch = input.dim() == 3 ? input.shape[0] : 1;
        if (!_h.TryGetValue(kind, out var h))
        {
            h = zeros(cols, cols, ScalarType.Float32).DetachFromDisposeScope();
            _h[kind] = h;
            _n[kind] = 0;
        }
        long n = _n[kind];
        h.TimesInPlace((double)n / (n + batch));
        n += batch;
        _n[kind] = n;
        var x = input.reshape(-1, cols).to(ScalarType.Float32).Times(Math.Sqrt(2.0 / n));
        h.addmm_(x.t(), x, 1, 1);
    }

    public long Samples(LinearKind kind) => _n.GetValueOrDefault(Group(kind));

    /// <summary>The accumulated H of the kind's group; the caller must not dispose it.</summary>
    public Tensor this[LinearKind kind] => _h.TryGetValue(Group(kind), out var h) ? h
        : throw new InvalidOperationException($"no calibration inputs reached {kind}");

    /// <summary>Frees one group's H (once its inverse factor is made).</summary>
    public void Release(LinearKind kind)
    {
        if (_h.Remove(Group(kind), out var h)) h.Dispose();
    }

    public void Dispose()
    {
        foreach (var h in _h.Values) h.Dispose();
        _h.Clear();
    }

    // ---- memory ---------------------------------------------------------------------------------

    /// <summary>
    /// Bytes the update needs at its peak within one block: the four float32 Hessians held after the block's
    /// forward (QKV and GateUp read C inputs, O reads H·D, Down reads F) plus two more K² matrices of the widest
    /// while it is factored (the dampened copy and the Cholesky factor, then the inverse and its factor).
    /// </summary>
    public static long PeakBytes(LlamaConfig c)
    {
        long C = c.HiddenSize, A = (long)c.NumHeads * c.HeadDim, F = c.IntermediateSize;
        long widest = Math.Max(Math.Max(C, A), F);
        return 4 * (2 * C * C + A * A + F * F + 2 * widest * widest);
    }

    /// <summary>Memory available to this process now: MemAvailable of /proc/meminfo, bounded by the GC's view of the limit (cgroups).</summary>
    public static long AvailableBytes()
    {
        long limit = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
                if (line.StartsWith("MemAvailable:", StringComparison.Ordinal))
                {
                    var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    return Math.Min(limit, long.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture) * 1024);
                }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return limit;
    }

    /// <summary>Refuses, before anything is pruned, a model whose Hessians do not fit in <paramref name="available"/> bytes.</summary>
    public static void CheckMemory(LlamaConfig c, long available, string method)
    {
        long need = PeakBytes(c);
        if (need > available)
        {
            long widest = Math.Max(Math.Max(c.HiddenSize, (long)c.NumHeads * c.HeadDim), c.IntermediateSize);
            throw new PrunerZeroException($"{method}: the float32 Hessians of one block need {LlamaModel.Gib(need)} " +
                $"(widest linear input K = {widest}: K²·4 bytes = {LlamaModel.Gib(widest * widest * 4)} each) but only {LlamaModel.Gib(available)} is available");
        }
    }
}
