using System.Runtime.InteropServices;
using PrunerZero.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Pruning;

public sealed record LayerSparsity(string Name, long Zeros, long Total)
{
    public double Sparsity => (double)Zeros / Total;
}

public sealed record PruneReport(string Metric, PruneTarget Target, bool Valid, string? InvalidReason, List<LayerSparsity> Layers,
    double ScoreSeconds, double MaskSeconds, double ForwardSeconds)
{
    public double Overall => Layers.Count == 0 ? 0 : (double)Layers.Sum(l => l.Zeros) / Layers.Sum(l => l.Total);
}

/// <summary>X of every prunable linear: per input column, Σ over calibration tokens of x², divided by nsamples (Wanda's scaler_row).</summary>
public sealed class XStats
{
    readonly Dictionary<LinearKind, Tensor> _sum = new();
    Tensor? _lastInput, _lastSq;

    public void Add(LinearKind kind, Tensor input)
    {
        // Q/K/V and Gate/Up share one input tensor: square-sum it once.
        if (!ReferenceEquals(input, _lastInput))
        {
            _lastInput = input;
            _lastSq = input.to(ScalarType.Float64).square().sum([0, 1]);
        }
        _sum[kind] = _sum.TryGetValue(kind, out var s) ? (s + _lastSq!).MoveToOuterDisposeScope() : _lastSq!.clone().MoveToOuterDisposeScope();
    }

    public float[] Finish(LinearKind kind, int nsamples) =>
        (_sum[kind] / nsamples).to(ScalarType.Float32).data<float>().ToArray();
}

/// <summary>X of every block measured on the dense model in one pass over the calibration windows.</summary>
public sealed class DenseX
{
    readonly Dictionary<(int, LinearKind), float[]> _x = new();

    public float[] this[int layer, LinearKind kind] => _x[(layer, kind)];

    public static DenseX Compute(LlamaModel model, CalibrationSet calib, IProgress<string>? progress = null)
    {
        var result = new DenseX();
        using var _ = no_grad();
        using var outer = NewDisposeScope();
        using var range = Nvtx.Range("calibration");
        var (cos, sin) = model.Rope(calib.Seqlen);
        var inps = calib.Windows.Chunk(8).Select(c => model.EmbedTokens(tensor(c.SelectMany(w => w).ToArray(), [c.Length, calib.Seqlen]))).ToList();
        for (int i = 0; i < model.Blocks.Count; i++)
        {
            progress?.Report($"calibration: block {i + 1}/{model.Blocks.Count}");
            var stats = new XStats();
            for (int c = 0; c < inps.Count; c++)
            {
                var next = model.BlockForward(i, inps[c], cos, sin, stats.Add);
                inps[c].Dispose();
                inps[c] = next;
            }
            foreach (var k in LinearKinds.All) result._x[(i, k)] = stats.Finish(k, calib.NSamples);
        }
        return result;
    }
}

/// <summary>
/// Prunes a model with a metric through a Kernels back end. Wanda's sequential protocol: block by block,
/// one forward pass of the calibration windows collects X for the block's linears, the block is pruned,
/// and re-run to give the next block's inputs.
/// </summary>
public sealed class Pruner(IMetricBackend backend)
{
    float[] _scores = [];
    byte[] _prune = [];
    public double ScoreSeconds, MaskSeconds, ForwardSeconds;
    const int Chunk = 8;   // calibration windows per block forward

    /// <summary>Scores one weight (R, K) and zeroes the pruned entries in place. Returns the reason when the metric is invalid.</summary>
    public string? PruneLayer(Tensor weight, Tensor? g, float[]? x, Expr metric, PruneTarget target, string name,
        ObsHook? obs = null, LinearKind kind = default)
    {
        int rows = (int)weight.shape[0], cols = (int)weight.shape[1], n = rows * cols;
        if (_scores.Length < n) { _scores = new float[n]; _prune = new byte[n]; }
        var w = MemoryMarshal.Cast<byte, float>(weight.bytes);
        ReadOnlySpan<float> gs = g is null ? default : MemoryMarshal.Cast<byte, float>(g.bytes);
        var scores = _scores.AsSpan(0, n);
        var prune = _prune.AsSpan(0, n);

        var sw = System.Diagnostics.Stopwatch.StartNew();
        MetricValidity validity;
        using (Nvtx.Range("scoring"))
        {
            backend.Score(metric, w, gs, x, rows, cols, scores);
            validity = ScoreCheck.Check(scores, rows, cols);
        }
        ScoreSeconds += sw.Elapsed.TotalSeconds;
        if (!validity.Valid) return $"{name}: {validity.Reason}";

        sw.Restart();
        using (Nvtx.Range("masking"))
        {
            if (target.IsNM) backend.MaskNM(scores, rows, cols, target.N, target.M, prune);
            else backend.MaskUnstructured(scores, rows, cols, target.Sparsity, prune);
            // ---- OBS hook (SparseGpt.cs): the sweep updates the kept weights with the mask fixed ----
            if (obs != null) obs.Prune(weight, kind, prune, target, name);
            else
            for (int i = 0; i < n; i++) if (prune[i] != 0) w[i] = 0f;
        }
        MaskSeconds += sw.Elapsed.TotalSeconds;
        return null;
    }

    /// <summary>The sequential protocol (Wanda / Pruner-Zero): X of each block measured on the already-pruned model.</summary>
    public PruneReport PruneSequential(LlamaModel model, CalibrationSet calib, GradientStats? g, Expr metric, PruneTarget target,
        IProgress<string>? progress = null, ObsHook? obs = null)
    {
        if (metric.UsesG && g is null) throw new ArgumentException("metric uses G but no gradients were given");
        ScoreSeconds = MaskSeconds = ForwardSeconds = 0;
        using var _ = no_grad();
        using var outer = NewDisposeScope();
        var fw = System.Diagnostics.Stopwatch.StartNew();
        int nsamples = calib.NSamples;
        var (cos, sin) = model.Rope(calib.Seqlen);
        var inps = Chunks(nsamples).Select(r => model.EmbedTokens(tensor(calib.Windows[r].SelectMany(w => w).ToArray(), [r.End.Value - r.Start.Value, calib.Seqlen]))).ToList();
        ForwardSeconds += fw.Elapsed.TotalSeconds;
        string? invalid = null;
        for (int i = 0; i < model.Blocks.Count && invalid is null; i++)
        {
            progress?.Report($"pruning block {i + 1}/{model.Blocks.Count} with {(obs is { OwnMask: true } ? PruneMethod.SparseGptName : obs != null ? $"{metric} + obs" : metric)}");
            fw.Restart();
            var stats = new XStats();
            // ---- OBS hook (SparseGpt.cs): the same forward gathers the Hessians of the block's linears ----
            obs?.BeginBlock();
            Action<LinearKind, Tensor> onInput = obs is null ? stats.Add : (k, t) => { if (metric.UsesX) stats.Add(k, t); obs.Add(k, t); };
            using (Nvtx.Range("calibration"))
            if (metric.UsesX || obs != null)
                foreach (var h in inps)
                {
                    using var scope = NewDisposeScope();
                    model.BlockForward(i, h, cos, sin, onInput);
                }
            ForwardSeconds += fw.Elapsed.TotalSeconds;
            foreach (var k in LinearKinds.All)
            {
                string name = $"model.layers.{i}.{k.HfName()}";
                if (obs is { OwnMask: true })
                {
                    var sw = System.Diagnostics.Stopwatch.StartNew();
                    obs.Prune(model.Blocks[i][k], k, default, target, name);   // SparseGPT: the sweep chooses the mask
                    MaskSeconds += sw.Elapsed.TotalSeconds;
                    continue;
                }
                invalid = PruneLayer(model.Blocks[i][k], g?[i, k], metric.UsesX ? stats.Finish(k, nsamples) : null, metric, target,
                    name, obs, k);
                if (invalid != null) break;
            }
            if (invalid != null) break;
            fw.Restart();
            for (int c = 0; c < inps.Count; c++)
            {
                var next = model.BlockForward(i, inps[c], cos, sin);
                inps[c].Dispose();
                inps[c] = next;
            }
            ForwardSeconds += fw.Elapsed.TotalSeconds;
        }
        return new PruneReport(metric.ToString(), target, invalid is null, invalid, invalid is null ? Sparsity(model) : [],
            ScoreSeconds, MaskSeconds, ForwardSeconds);
    }

    /// <summary>
    /// One-shot pruning with statistics measured once on the dense model (<see cref="DenseX"/>): what a search
    /// needs, since every candidate then costs only scoring, masking and the evaluation. Differs from the
    /// sequential protocol only for metrics that use X, whose later blocks see dense instead of pruned inputs.
    /// </summary>
    public PruneReport PruneOneShot(LlamaModel model, DenseX x, GradientStats? g, Expr metric, PruneTarget target)
    {
        if (metric.UsesG && g is null) throw new ArgumentException("metric uses G but no gradients were given");
        ScoreSeconds = MaskSeconds = ForwardSeconds = 0;
        using var _ = no_grad();
        string? invalid = null;
        for (int i = 0; i < model.Blocks.Count && invalid is null; i++)
            foreach (var k in LinearKinds.All)
            {
                invalid = PruneLayer(model.Blocks[i][k], g?[i, k], metric.UsesX ? x[i, k] : null, metric, target, $"model.layers.{i}.{k.HfName()}");
                if (invalid != null) break;
            }
        return new PruneReport(metric.ToString(), target, invalid is null, invalid, invalid is null ? Sparsity(model) : [],
            ScoreSeconds, MaskSeconds, ForwardSeconds);
    }

    static IEnumerable<Range> Chunks(int n)
    {
        for (int s = 0; s < n; s += Chunk) yield return s..Math.Min(n, s + Chunk);
    }

    /// <summary>Fraction of exact zeros per prunable layer, as Wanda's check_sparsity counts them.</summary>
    public static List<LayerSparsity> Sparsity(LlamaModel model)
    {
        var list = new List<LayerSparsity>();
        for (int i = 0; i < model.Blocks.Count; i++)
            foreach (var k in LinearKinds.All)
            {
                var w = model.Blocks[i][k];
                long zeros = w.eq(0).sum().item<long>();
                list.Add(new LayerSparsity($"model.layers.{i}.{k.HfName()}", zeros, w.NumberOfElements));
            }
        return list;
    }
}
