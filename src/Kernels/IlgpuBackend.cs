// ILGPU back end: the same composed node types (Mul<Sqr<WTerm>, Mms<GTerm>>, ...) compiled by ILGPU into
// one fused element-wise kernel per metric, device-side reductions for mms/zsn/div, and per-row
// selection kernels. Shapes as in IMetricBackend. Runs on CUDA (production) or on ILGPU's CPU
// accelerator, an emulator (~µs per logical thread) meant for tests on small inputs only.
using System.Collections.Concurrent;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using PrunerZero.Kernels.Nodes;

namespace PrunerZero.Kernels;

/// <summary>Scalar kernel arguments, packed to keep kernel signatures short.</summary>
public struct KernelDims
{
    public int Cols;     // K
    public int UseG;     // 1 when G is bound (else g is a 1-element dummy)
    public int UseX;     // 1 when X is bound
    public int N;        // R*K
    public int Stride;   // reduction threads; thread t handles t, t+Stride, ...
    public double Center; // reductions: Σ(v − Center)²
}

public static class IlgpuKernels
{
    public static void Score<T>(Index1D i, ArrayView<float> w, ArrayView<float> g, ArrayView<float> x,
                                KernelDims d, T node, ArrayView<float> scores) where T : struct, INode
    {
        int idx = i;
        float gv = d.UseG != 0 ? g[idx] : 0f;
        float xv = d.UseX != 0 ? x[idx % d.Cols] : 0f;
        scores[idx] = node.Eval(w[idx], gv, xv);
    }

    /// <summary>
    /// Deterministic reduction: thread t folds elements t, t+Stride, ... (coalesced) into its own partial;
    /// the host combines the partials in thread order. No atomics, so the result never depends on scheduling.
    /// </summary>
    public static void Reduce<T>(Index1D t, ArrayView<float> w, ArrayView<float> g, ArrayView<float> x,
                                 KernelDims d, T node, ArrayView<float> mins, ArrayView<float> maxs,
                                 ArrayView<double> sums, ArrayView<double> sqs) where T : struct, INode
    {
        float mn = float.PositiveInfinity, mx = float.NegativeInfinity;
        double s = 0, q = 0;
        for (int idx = t; idx < d.N; idx += d.Stride)
        {
            float gv = d.UseG != 0 ? g[idx] : 0f;
            float xv = d.UseX != 0 ? x[idx % d.Cols] : 0f;
            float v = node.Eval(w[idx], gv, xv);
            mn = MathF.Min(mn, v);
            mx = MathF.Max(mx, v);
            s += v;
            double dv = v - d.Center;
            q += dv * dv;
        }
        mins[t] = mn; maxs[t] = mx; sums[t] = s; sqs[t] = q;
    }

    /// <summary>Same order-preserving key as Masks.Key, written with ILGPU intrinsics.</summary>
    static uint Key(float f)
    {
#pragma warning disable CS1718 // f != f is the NaN test that every ILGPU back end understands
        if (f != f) return 0; // NaN lowest
#pragma warning restore CS1718
        uint b = Interop.FloatAsInt(f);
        if (b == 0x8000_0000u) b = 0;
        return (b & 0x8000_0000u) != 0 ? ~b : b | 0x8000_0000u;
    }

    /// <summary>
    /// One thread per row: bisection over the 32-bit key space finds T, the k-th smallest key (32 counting
    /// passes, no scratch memory), then keys &lt; T are pruned and keys == T in column order until k.
    /// </summary>
    public static void MaskRows(Index1D r, ArrayView<float> scores, int cols, int k, ArrayView<byte> prune)
    {
        long off = (long)(int)r * cols;
        uint lo = 0, hi = uint.MaxValue;
        while (lo < hi)
        {
            uint mid = lo + (hi - lo) / 2;
            int cnt = 0;
            for (int c = 0; c < cols; c++) if (Key(scores[off + c]) <= mid) cnt++;
            if (cnt >= k) hi = mid; else lo = mid + 1;
        }
        int less = 0;
        for (int c = 0; c < cols; c++) if (Key(scores[off + c]) < lo) less++;
        int ties = k - less;
        for (int c = 0; c < cols; c++)
        {
            uint key = Key(scores[off + c]);
            byte v = 0;
            if (key < lo) v = 1;
            else if (key == lo && ties > 0) { v = 1; ties--; }
            prune[off + c] = v;
        }
    }

    /// <summary>One thread per group of m consecutive columns (rows are multiples of m, so groups are flat blocks).</summary>
    public static void MaskNM(Index1D gi, ArrayView<float> scores, int n, int m, ArrayView<byte> prune)
    {
        long b = (long)(int)gi * m;
        for (int j = 0; j < m; j++)
        {
            uint kj = Key(scores[b + j]);
            int rank = 0;
            for (int e = 0; e < m; e++)
            {
                uint ke = Key(scores[b + e]);
                if (ke < kj || (ke == kj && e < j)) rank++;
            }
            prune[b + j] = rank < n ? (byte)1 : (byte)0;
        }
    }
}

public sealed class IlgpuBackend : IMetricBackend
{
    readonly Context _context;
    readonly Accelerator _acc;
    readonly ConcurrentDictionary<Type, IlgpuPass> _passes = new();
    readonly ConcurrentDictionary<string, NodePlan> _plans = new();
    readonly Action<Index1D, ArrayView<float>, int, int, ArrayView<byte>> _maskRows;
    readonly Action<Index1D, ArrayView<float>, int, int, ArrayView<byte>> _maskNM;
    readonly object _gate = new(); // one launch sequence at a time on the default stream

    public Accelerator Accelerator => _acc;
    public string Name => $"ilgpu-{_acc.AcceleratorType.ToString().ToLowerInvariant()}";

    IlgpuBackend(Context context, Accelerator acc)
    {
        _context = context;
        _acc = acc;
        _maskRows = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, int, int, ArrayView<byte>>(IlgpuKernels.MaskRows);
        _maskNM = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, int, int, ArrayView<byte>>(IlgpuKernels.MaskNM);
    }

    /// <summary>
    /// cuda = true: the first CUDA device, or InvalidOperationException if there is none (ILGPU's Cuda()
    /// silently yields no device when no GPU/driver is present, so this is checked explicitly).
    /// cuda = false: ILGPU's CPU accelerator (slow emulator; tests and small inputs only).
    /// </summary>
    public static IlgpuBackend Create(bool preferCuda)
    {
        if (preferCuda)
        {
            Context ctx;
            try { ctx = Context.Create(b => b.Cuda().EnableAlgorithms()); }
            catch (Exception ex) { throw new InvalidOperationException($"CUDA requested but the ILGPU CUDA runtime could not start: {ex.Message}", ex); }
            var devices = ctx.GetCudaDevices();
            if (devices.Count == 0)
            {
                ctx.Dispose();
                throw new InvalidOperationException("CUDA requested but no CUDA device was found (is the NVIDIA driver installed and a GPU visible?). Use the CPU backend instead.");
            }
            return new IlgpuBackend(ctx, ctx.CreateCudaAccelerator(0));
        }
        var cpu = Context.Create(b => b.CPU().EnableAlgorithms());
        return new IlgpuBackend(cpu, cpu.CreateCPUAccelerator(0));
    }

    int ReductionThreads(int n) => Math.Min(n, _acc.AcceleratorType == AcceleratorType.CPU ? 64 : 1 << 16);

    IlgpuPass PassFor(Type t) =>
        _passes.GetOrAdd(t, type => (IlgpuPass)Activator.CreateInstance(typeof(IlgpuPass<>).MakeGenericType(type), _acc)!);

    public void Score(Expr e, ReadOnlySpan<float> weight, ReadOnlySpan<float> g, ReadOnlySpan<float> x, int rows, int cols, Span<float> scores)
    {
        ArgumentNullException.ThrowIfNull(e);
        ScoreArgs.Check(e, weight.Length, g.Length, x.Length, rows, cols, scores.Length);
        var plan = _plans.GetOrAdd(e.ToString(), _ => NodePlan.For(e));
        int n = rows * cols;
        lock (_gate)
        {
            var s = _acc.DefaultStream;
            using var bw = _acc.Allocate1D<float>(n);
            using var bg = _acc.Allocate1D<float>(e.UsesG ? n : 1);
            using var bx = _acc.Allocate1D<float>(e.UsesX ? cols : 1);
            using var bs = _acc.Allocate1D<float>(n);
            bw.View.CopyFromCPU(s, weight);
            if (e.UsesG) bg.View.CopyFromCPU(s, g);
            if (e.UsesX) bx.View.CopyFromCPU(s, x);
            var dims = new KernelDims { Cols = cols, UseG = e.UsesG ? 1 : 0, UseX = e.UsesX ? 1 : 0, N = n, Stride = ReductionThreads(n) };
            var io = new DeviceInputs(bw.View, bg.View, bx.View, dims);
            var node = plan.Build(new GpuReducer(this, io));
            PassFor(plan.Type).Score(node, io, bs.View);
            _acc.Synchronize();
            bs.View.CopyToCPU(s, scores);
        }
    }

    public void MaskUnstructured(ReadOnlySpan<float> scores, int rows, int cols, double sparsity, Span<byte> prune)
    {
        Masks.CheckShape(scores.Length, rows, cols, prune.Length);
        int k = Masks.PrunedPerRow(cols, sparsity);
        lock (_gate)
        {
            var s = _acc.DefaultStream;
            using var bs = _acc.Allocate1D<float>(scores.Length);
            using var bp = _acc.Allocate1D<byte>(scores.Length);
            bs.View.CopyFromCPU(s, scores);
            _maskRows(rows, bs.View, cols, k, bp.View);
            _acc.Synchronize();
            bp.View.CopyToCPU(s, prune);
        }
    }

    public void MaskNM(ReadOnlySpan<float> scores, int rows, int cols, int n, int m, Span<byte> prune)
    {
        Masks.CheckNM(scores.Length, rows, cols, n, m, prune.Length);
        lock (_gate)
        {
            var s = _acc.DefaultStream;
            using var bs = _acc.Allocate1D<float>(scores.Length);
            using var bp = _acc.Allocate1D<byte>(scores.Length);
            bs.View.CopyFromCPU(s, scores);
            _maskNM(scores.Length / m, bs.View, n, m, bp.View);
            _acc.Synchronize();
            bp.View.CopyToCPU(s, prune);
        }
    }

    /// <summary>
    /// PTX text of the fused score kernel for a metric, compiled without any GPU (a build-time check that the
    /// node types are ILGPU-compatible). Needs EnableAlgorithms for exp/log/tanh.
    /// </summary>
    public static string CompilePtx(Expr e, CudaArchitecture? arch = null)
    {
        ArgumentNullException.ThrowIfNull(e);
        var a = arch ?? CudaArchitecture.SM_70;
        using var ctx = Context.Create(b => b.EnableAlgorithms());
        using var backend = new PTXBackend(ctx, new CudaCapabilityContext(a), a, CudaInstructionSet.ISA_70, null);
        var mi = typeof(IlgpuKernels).GetMethod(nameof(IlgpuKernels.Score))!.MakeGenericMethod(NodePlan.For(e).Type);
        var entry = EntryPointDescription.FromImplicitlyGroupedKernel(mi);
        var compiled = (PTXCompiledKernel)backend.Compile(entry, default);
        return compiled.PTXAssembly;
    }

    public void Dispose()
    {
        _acc.Dispose();
        _context.Dispose();
    }

    internal readonly record struct DeviceInputs(ArrayView<float> W, ArrayView<float> G, ArrayView<float> X, KernelDims Dims);

    sealed class GpuReducer(IlgpuBackend owner, DeviceInputs io) : IReducer
    {
        public Stats Reduce(NodePlan plan, object value, double center)
        {
            var acc = owner._acc;
            var dims = io.Dims with { };
            dims.Center = center;
            int t = dims.Stride;
            using var mins = acc.Allocate1D<float>(t);
            using var maxs = acc.Allocate1D<float>(t);
            using var sums = acc.Allocate1D<double>(t);
            using var sqs = acc.Allocate1D<double>(t);
            owner.PassFor(plan.Type).Reduce(value, io with { Dims = dims }, mins.View, maxs.View, sums.View, sqs.View);
            acc.Synchronize();
            var hmin = mins.GetAsArray1D(); var hmax = maxs.GetAsArray1D();
            var hsum = sums.GetAsArray1D(); var hsq = sqs.GetAsArray1D();
            float mn = float.PositiveInfinity, mx = float.NegativeInfinity;
            double s = 0, q = 0;
            for (int i = 0; i < t; i++) // thread order: deterministic
            {
                mn = MathF.Min(mn, hmin[i]); mx = MathF.Max(mx, hmax[i]);
                s += hsum[i]; q += hsq[i];
            }
            return new Stats(mn, mx, s, q, dims.N);
        }
    }

    internal abstract class IlgpuPass
    {
        public abstract void Score(object node, DeviceInputs io, ArrayView<float> scores);
        public abstract void Reduce(object node, DeviceInputs io, ArrayView<float> mins, ArrayView<float> maxs, ArrayView<double> sums, ArrayView<double> sqs);
    }

    /// <summary>Kernels for one node type, compiled on first use: a root type needs only Score, a reduced subtree only Reduce.</summary>
    internal sealed class IlgpuPass<T>(Accelerator acc) : IlgpuPass where T : struct, INode
    {
        Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, KernelDims, T, ArrayView<float>>? _score;
        Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, KernelDims, T,
               ArrayView<float>, ArrayView<float>, ArrayView<double>, ArrayView<double>>? _reduce;

        public override void Score(object node, DeviceInputs io, ArrayView<float> scores)
        {
            _score ??= Load(() => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, KernelDims, T, ArrayView<float>>(IlgpuKernels.Score<T>));
            _score(io.Dims.N, io.W, io.G, io.X, io.Dims, (T)node, scores);
        }

        public override void Reduce(object node, DeviceInputs io, ArrayView<float> mins, ArrayView<float> maxs, ArrayView<double> sums, ArrayView<double> sqs)
        {
            _reduce ??= Load(() => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, KernelDims, T,
                ArrayView<float>, ArrayView<float>, ArrayView<double>, ArrayView<double>>(IlgpuKernels.Reduce<T>));
            _reduce(io.Dims.Stride, io.W, io.G, io.X, io.Dims, (T)node, mins, maxs, sums, sqs);
        }

        TKernel Load<TKernel>(Func<TKernel> load)
        {
            try { return load(); }
            catch (Exception ex)
            {
                // A failed ILGPU compile can poison the context's caches; clear them so later metrics still compile.
                acc.Context.ClearCache(ClearCacheMode.Everything);
                throw new InvalidOperationException($"ILGPU could not compile the kernel for node type {typeof(T)}: {ex.Message}", ex);
            }
        }
    }
}
