using System.Runtime.InteropServices;
using PrunerZero.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Pruning;

public sealed record LayerSparsity(string Name, long Zeros, long Total)
{
    public double Sparsity => (double)Zeros / Total;
}

/// <summary>Seconds one block took in the sequential protocol: calibration forward (X), scoring, masking, propagation.</summary>
public sealed record BlockTiming(int Layer, double Calibration, double Scoring, double Masking, double Propagation);

public sealed record PruneReport(string Metric, PruneTarget Target, bool Valid, string? InvalidReason, List<LayerSparsity> Layers,
    double ScoreSeconds, double MaskSeconds, double ForwardSeconds)
{
    public double Overall => Layers.Count == 0 ? 0 : (double)Layers.Sum(l => l.Zeros) / Layers.Sum(l => l.Total);
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

    /// <summary>
    /// Scores one weight (R, K) and zeroes the pruned entries in place (or, with <paramref name="obs"/>, hands the
    /// mask to the OBS update). Returns the reason when the metric is invalid. The kernels read the weight's memory:
    /// it must be a contiguous CPU float32 tensor (a block's <see cref="LlamaBlock.Float32"/> working copy;
    /// <see cref="PruneBlock"/> copies from other devices).
    /// </summary>
    public string? PruneLayer(Tensor weight, Tensor? g, float[]? x, Expr metric, PruneTarget target, string name,
        ObsHook? obs = null, LinearKind kind = default)
    {
        var invalid = Select(weight, g, x, metric, target, name);
        if (invalid != null) return invalid;
        int n = (int)weight.shape[0] * (int)weight.shape[1];
        var w = MemoryMarshal.Cast<byte, float>(weight.bytes);
        var prune = _prune.AsSpan(0, n);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        using (Nvtx.Range("masking"))
        {
            // ---- OBS hook (SparseGpt.cs): the sweep updates the kept weights with the mask fixed ----
            if (obs != null) obs.Prune(weight, kind, prune, target, name);
            else
            for (int i = 0; i < n; i++) if (prune[i] != 0) w[i] = 0f;
        }
        MaskSeconds += sw.Elapsed.TotalSeconds;
        return null;
    }

    /// <summary>Scores one weight and selects its prune mask into the first rows × cols bytes of _prune (1 = pruned); the weight is not changed.</summary>
    string? Select(Tensor weight, Tensor? g, float[]? x, Expr metric, PruneTarget target, string name)
    {
        RequireHostFloat32(weight, name);
        if (g is not null) RequireHostFloat32(g, name + " G");
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
        }
        MaskSeconds += sw.Elapsed.TotalSeconds;
        return null;
    }

    /// <summary>The weight and its G as contiguous host tensors for the kernels (copies, in the caller's scope, when they are elsewhere).</summary>
    static (Tensor W, Tensor? G) OnHost(Tensor w, Tensor? g)
    {
        var host = w.device_type == DeviceType.CPU && w.is_contiguous() ? w : w.cpu().contiguous();
        if (g is not null && (g.device_type != DeviceType.CPU || !g.is_contiguous())) g = g.cpu().contiguous();
        return (host, g);
    }

    static void RequireHostFloat32(Tensor t, string name)
    {
        if (t.device_type != DeviceType.CPU || t.dtype != ScalarType.Float32 || !t.is_contiguous())
            throw new InvalidOperationException($"{name}: the scoring kernels need a contiguous CPU float32 tensor, got {t.dtype} on {t.device} (contiguous: {t.is_contiguous()})");
    }

    /// <summary>
    /// Prunes the linears of one float32 working block in place (a <see cref="LlamaBlock.Float32"/> copy), G
    /// read per layer; the caller writes the block back. Tensors on another device are copied to the host
    /// for the kernels and back. Returns the reason when the metric is invalid.
    /// </summary>
    public string? PruneBlock(int layer, LlamaBlock working, GradientStats? g, Func<LinearKind, float[]?> x, Expr metric, PruneTarget target,
        ObsHook? obs = null)
    {
        foreach (var k in LinearKinds.All)
        {
            using var scope = NewDisposeScope();
            var w = working[k];
            var (host, gk) = OnHost(w, g?[layer, k]);
            string name = $"model.layers.{layer}.{k.HfName()}";
            string? invalid = null;
            if (obs is { OwnMask: true })
            {
                var sw = System.Diagnostics.Stopwatch.StartNew();
                obs.Prune(host, k, default, target, name);   // SparseGPT: the sweep chooses the mask
                MaskSeconds += sw.Elapsed.TotalSeconds;
            }
            else invalid = PruneLayer(host, gk, x(k), metric, target, name, obs, k);
            if (invalid != null) return invalid;
            if (!ReferenceEquals(host, w)) w.copy_(host);
        }
        return null;
    }

    /// <summary>
    /// The sequential protocol (Wanda / Pruner-Zero): X of each block measured on the already-pruned model.
    /// Block by block: the block's weights in float32, X from the calibration hidden states, the block
    /// pruned and written back in the model's dtype, then the hidden states advanced through the pruned
    /// block. A metric without X needs no hidden states at all (the pruning is the same).
    /// </summary>
    public PruneReport PruneSequential(LlamaModel model, CalibrationSet calib, GradientStats? g, Expr metric, PruneTarget target,
        IProgress<string>? progress = null, IProgress<BlockTiming>? timing = null, ObsHook? obs = null)
    {
        if (metric.UsesG && g is null) throw new ArgumentException("metric uses G but no gradients were given");
        ScoreSeconds = MaskSeconds = ForwardSeconds = 0;
        using var _ = no_grad();
        var fw = System.Diagnostics.Stopwatch.StartNew();
        int nsamples = calib.NSamples;
        using var acts = metric.UsesX || obs != null ? new BlockActivations(model, calib) : null;
        ForwardSeconds += fw.Elapsed.TotalSeconds;
        string? invalid = null;
        for (int i = 0; i < model.Blocks.Count && invalid is null; i++)
        {
            progress?.Report($"pruning block {i + 1}/{model.Blocks.Count} with {(obs is { OwnMask: true } ? PruneMethod.SparseGptName : obs != null ? $"{metric} + obs" : metric)}");
            double s0 = ScoreSeconds, m0 = MaskSeconds;
            using var scope = NewDisposeScope();
            var working = model.Blocks[i].Float32();
            fw.Restart();
            XStats? stats = null;
            using (Nvtx.Range("calibration"))
                if (obs != null)
                {
                    // ---- OBS hook (SparseGpt.cs): the same forward gathers the Hessians of the block's linears ----
                    obs.BeginBlock();
                    var xs = metric.UsesX ? new XStats() : null;
                    acts!.Observe(i, (k, t) => { xs?.Add(k, t); obs.Add(k, t); }, working);
                    stats = xs;
                }
                else if (acts != null) stats = acts.ObserveX(i, working);
            double observe = fw.Elapsed.TotalSeconds;
            ForwardSeconds += observe;
            using (stats)
                invalid = PruneBlock(i, working, g, k => stats?.Finish(k, nsamples), metric, target, obs);
            if (invalid != null) break;
            model.Blocks[i].WriteBack(working);
            fw.Restart();
            if (acts != null && i + 1 < model.Blocks.Count) acts.Advance(i, working);
            ForwardSeconds += fw.Elapsed.TotalSeconds;
            timing?.Report(new BlockTiming(i, observe, ScoreSeconds - s0, MaskSeconds - m0, fw.Elapsed.TotalSeconds));
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
        {
            using var scope = NewDisposeScope();
            var working = model.Blocks[i].Float32();
            int layer = i;
            invalid = PruneBlock(i, working, g, k => metric.UsesX ? x[layer, k] : null, metric, target);
            if (invalid is null) model.Blocks[i].WriteBack(working);
        }
        return new PruneReport(metric.ToString(), target, invalid is null, invalid, invalid is null ? Sparsity(model) : [],
            ScoreSeconds, MaskSeconds, ForwardSeconds);
    }

    /// <summary>
    /// SHA-256 (System.Security.Cryptography) of the masks <see cref="PruneOneShot"/> would apply, without changing the
    /// model or running a forward pass: for every block in order and every linear in <see cref="LinearKinds.All"/>
    /// order, its shape and its prune bits packed 8 to a byte (row-major, bit i%8 of byte i/8). The model must be
    /// dense. Equal fingerprints mean the same pruned model. Null when the metric is invalid.
    /// </summary>
    public string? MaskFingerprint(LlamaModel model, DenseX? x, GradientStats? g, Expr metric, PruneTarget target)
    {
        if (metric.UsesG && g is null) throw new ArgumentException("metric uses G but no gradients were given");
        if (metric.UsesX && x is null) throw new ArgumentException("metric uses X but no activations were given");
        using var _ = no_grad();
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        var packed = Array.Empty<byte>();
        for (int i = 0; i < model.Blocks.Count; i++)
        {
            using var scope = NewDisposeScope();
            var working = model.Blocks[i].Float32();
            foreach (var k in LinearKinds.All)
            {
                using var inner = NewDisposeScope();
                var (host, gk) = OnHost(working[k], g?[i, k]);
                string name = $"model.layers.{i}.{k.HfName()}";
                if (Select(host, gk, metric.UsesX ? x![i, k] : null, metric, target, name) != null) return null;
                int rows = (int)host.shape[0], cols = (int)host.shape[1], n = rows * cols;
                int bytes = (n + 7) / 8;
                if (packed.Length < bytes) packed = new byte[bytes];
                Array.Clear(packed, 0, bytes);
                var prune = _prune.AsSpan(0, n);
                for (int j = 0; j < n; j++) if (prune[j] != 0) packed[j >> 3] |= (byte)(1 << (j & 7));
                hash.AppendData(BitConverter.GetBytes(rows));
                hash.AppendData(BitConverter.GetBytes(cols));
                hash.AppendData(packed, 0, bytes);
            }
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>Fraction of exact zeros per prunable layer, as Wanda's check_sparsity counts them.</summary>
    public static List<LayerSparsity> Sparsity(LlamaModel model)
    {
        var list = new List<LayerSparsity>();
        for (int i = 0; i < model.Blocks.Count; i++)
            foreach (var k in LinearKinds.All)
            {
                using var scope = NewDisposeScope();
                var w = model.Blocks[i][k];
                long zeros = w.EqualTo(0).sum().item<long>();   // the bool mask is weight-sized: freed per layer
                list.Add(new LayerSparsity($"model.layers.{i}.{k.HfName()}", zeros, w.NumberOfElements));
            }
        return list;
    }
}
