// A stand-in fitness with a known optimum, for tests and dry runs of the search without a model:
// "perplexity" = 1 + 100 · (fraction of weights whose prune decision differs from the hidden target
// metric's), on seeded random (W, G, X), scored by the Kernels CPU path. The target itself scores 1.
// Screen uses one set of matrices, Full a second, larger one.
using System.Diagnostics;
using PrunerZero.Kernels;

namespace PrunerZero.Search;

public sealed class SyntheticFitness : IFitness
{
    sealed record Layer(float[] W, float[] G, float[] X, int Rows, int Cols, byte[] TargetMask);

    readonly Layer[] _screen, _full;
    readonly double _sparsity;
    int _screenCalls, _fullCalls;

    public Expr Target { get; }
    public int MaxParallelism { get; }
    public string Protocol { get; }
    public int ScreenCalls => _screenCalls;
    public int FullCalls => _fullCalls;

    public SyntheticFitness(Expr target, int seed = 1, int rows = 16, int cols = 64, double sparsity = 0.5, int maxParallelism = 1)
    {
        Target = target;
        _sparsity = sparsity;
        MaxParallelism = maxParallelism;
        Protocol = $"synthetic target={target}, seed={seed}, shape={rows}x{cols}, sparsity={sparsity}";
        var rng = new Rng((ulong)seed);
        _screen = [MakeLayer(rng, rows, cols), MakeLayer(rng, rows, cols)];
        _full = [.. Enumerable.Range(0, 4).Select(_ => MakeLayer(rng, rows, cols))];
    }

    Layer MakeLayer(Rng rng, int rows, int cols)
    {
        int n = rows * cols;
        var w = new float[n]; var g = new float[n]; var x = new float[cols];
        for (int i = 0; i < n; i++)
        {
            w[i] = (float)(Gauss(rng) * 0.05);
            g[i] = (float)Math.Abs(Gauss(rng) * 1e-3 * (1 + i % 7));
        }
        for (int c = 0; c < cols; c++) x[c] = (float)(rng.NextDouble() * rng.NextDouble() * 10);
        var layer = new Layer(w, g, x, rows, cols, []);
        var mask = Mask(Target, layer) ?? throw new ArgumentException($"the target metric {Target} is itself invalid on random data");
        return layer with { TargetMask = mask };
    }

    static double Gauss(Rng rng) => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());

    byte[]? Mask(Expr e, Layer l) => Mask(e, l, out _);

    byte[]? Mask(Expr e, Layer l, out string? reason)
    {
        var scores = new float[l.Rows * l.Cols];
        CpuFusedScorer.Score(e, l.W, l.G, l.X, l.Rows, l.Cols, scores);
        var v = ScoreCheck.Check(scores, l.Rows, l.Cols);
        reason = v.Reason;
        if (!v.Valid) return null;
        var mask = new byte[scores.Length];
        Masks.Unstructured(scores, l.Rows, l.Cols, _sparsity, mask);
        return mask;
    }

    FitnessResult Measure(Expr e, Layer[] layers, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        var sw = Stopwatch.StartNew();
        long differ = 0, total = 0;
        foreach (var l in layers)
        {
            var m = Mask(e, l, out var reason);
            if (m is null) return FitnessResult.Invalid(reason ?? "invalid", sw.Elapsed.TotalSeconds);
            for (int i = 0; i < m.Length; i++) if (m[i] != l.TargetMask[i]) differ++;
            total += m.Length;
        }
        return new FitnessResult(true, 1 + 100.0 * differ / total, null, sw.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// <see cref="MaskFingerprint"/> of the masks Screen measures (every screen layer in order); null when the metric
    /// is invalid. Not an <see cref="IMaskFingerprint"/> itself, so the plain synthetic runs stay as they were; tests
    /// wrap it to exercise the search's same-mask path.
    /// </summary>
    public string? ScreenMaskFingerprint(Expr metric)
    {
        using var fingerprint = new MaskFingerprint();
        foreach (var l in _screen)
        {
            var m = Mask(metric, l);
            if (m is null) return null;
            fingerprint.Add(m, l.Rows, l.Cols);
        }
        return fingerprint.Finish();
    }

    public FitnessResult Screen(Expr metric, CancellationToken ct)
    {
        Interlocked.Increment(ref _screenCalls);
        return Measure(metric, _screen, ct);
    }

    public FitnessResult Full(Expr metric, CancellationToken ct)
    {
        Interlocked.Increment(ref _fullCalls);
        return Measure(metric, _full, ct);
    }
}
