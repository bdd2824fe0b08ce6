using System.Diagnostics;
using PrunerZero.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Pruning;

public sealed record LayerSparsity(string Name, long Zeros, long Total)
{
    public double Sparsity => (double)Zeros / Total;
}

/// <summary>Seconds one block took: calibration forward (X), scoring, masking, propagation.</summary>
public sealed record BlockTiming(int Layer, double Calibration, double Scoring, double Masking, double Propagation);

/// <summary>
/// What one pruning did. <see cref="MaskFingerprint"/> (see <see cref="Kernels.MaskFingerprint"/>) is set when the
/// caller asked for it and the metric was valid.
/// </summary>
public sealed record PruneReport(string Metric, PruneTarget Target, bool Valid, string? InvalidReason, List<LayerSparsity> Layers,
    double ScoreSeconds, double MaskSeconds, double ForwardSeconds, string? MaskFingerprint = null)
{
    public double Overall => Layers.Count == 0 ? 0 : (double)Layers.Sum(l => l.Zeros) / Layers.Sum(l => l.Total);
}

/// <summary>
/// Prunes a model with a metric through a Kernels back end, in one block loop: per block, its inputs give X
/// (<see cref="DenseInputs"/>: measured once on the dense model; <see cref="SequentialInputs"/>: Wanda's protocol,
/// measured on the already-pruned model), each linear's mask is selected (<see cref="MaskSelector"/>) and applied by
/// the weight update (<see cref="Zeroing"/> or the OBS update, <see cref="ObsUpdate"/>), and the block is written back.
/// </summary>
public sealed class Pruner(IMetricBackend backend)
{
    readonly MaskSelector _selector = new(backend);

    /// <summary>
    /// The sequential protocol (Wanda / Pruner-Zero): X of each block measured on the already-pruned model. Block
    /// by block: the block's weights in float32, X (and, for the OBS update, the Hessians) from one forward of the
    /// calibration hidden states, the block pruned and written back in the model's dtype, then the hidden states
    /// advanced through the pruned block. A metric without X and plain zeroing need no hidden states at all (the
    /// pruning is the same).
    /// </summary>
    public PruneReport PruneSequential(LlamaModel model, CalibrationSet calib, GradientStats? g, Expr metric, PruneTarget target,
        IProgress<string>? progress = null, IProgress<BlockTiming>? timing = null, ObsUpdate? obs = null, SparsityAllocation? allocation = null)
    {
        IWeightUpdate update = obs is null ? Zeroing.Instance : obs;
        var fw = Stopwatch.StartNew();
        using IBlockInputs inputs = metric.UsesX || update.NeedsInputs ? new SequentialInputs(model, calib, metric.UsesX) : new DenseInputs(null);
        double embed = fw.Elapsed.TotalSeconds;
        string label = obs is { ChoosesMask: true } ? PruneMethod.SparseGptName : obs != null ? $"{metric} + obs" : metric.ToString();
        var report = Run(model, inputs, g, metric, target, allocation, update, fingerprint: null, progress, timing, label);
        return report with { ForwardSeconds = report.ForwardSeconds + embed };
    }

    /// <summary>
    /// One-shot pruning with X measured once on the dense model (<see cref="DenseX"/>): what a search needs, since
    /// every candidate then costs only scoring, masking and the evaluation. Differs from the sequential protocol only
    /// for metrics that use X, whose later blocks see dense instead of pruned inputs. With <paramref name="fingerprint"/>
    /// the report carries the fingerprint of the masks applied.
    /// </summary>
    public PruneReport PruneOneShot(LlamaModel model, DenseX? x, GradientStats? g, Expr metric, PruneTarget target, bool fingerprint = false,
        SparsityAllocation? allocation = null)
    {
        if (metric.UsesX && x is null) throw new ArgumentException("the metric uses X but no activations were given", nameof(x));
        using var inputs = new DenseInputs(metric.UsesX ? x : null);
        using var fp = fingerprint ? new MaskFingerprint() : null;
        return Run(model, inputs, g, metric, target, allocation, Zeroing.Instance, fp, progress: null, timing: null, metric.ToString());
    }

    /// <summary>The block loop of both protocols; each linear pruned to <paramref name="allocation"/>'s sparsity when given, else to <paramref name="target"/>.</summary>
    PruneReport Run(LlamaModel model, IBlockInputs inputs, GradientStats? g, Expr metric, PruneTarget target, SparsityAllocation? allocation,
        IWeightUpdate update, MaskFingerprint? fingerprint, IProgress<string>? progress, IProgress<BlockTiming>? timing, string label)
    {
        if (allocation is not null && (target.IsNM || allocation.Blocks != model.Blocks.Count || allocation.Target != target.Sparsity))
            throw new ArgumentException($"allocation {allocation.Method} (target {allocation.Target}, {allocation.Blocks} blocks) does not fit target {target} on {model.Blocks.Count} blocks", nameof(allocation));
        if (metric.UsesG && g is null && !update.ChoosesMask) throw new ArgumentException("the metric uses G but no gradients were given", nameof(g));
        using var _ = no_grad();
        double score = 0, mask = 0, forward = 0;
        var sw = new Stopwatch();
        string? invalid = null;
        for (int i = 0; i < model.Blocks.Count && invalid is null; i++)
        {
            progress?.Report($"pruning block {i + 1}/{model.Blocks.Count} with {label}");
            using var scope = NewDisposeScope();
            var working = model.Blocks[i].Float32();
            update.BeginBlock();
            sw.Restart();
            using var x = inputs.Observe(i, working, update);
            double observe = sw.Elapsed.TotalSeconds;
            double s0 = score, m0 = mask;
            foreach (var k in LinearKinds.All)
            {
                using var inner = NewDisposeScope();
                var w = working[k];
                var (host, gk) = OnHost(w, update.ChoosesMask ? null : g?[i, k]);
                string name = $"model.layers.{i}.{k.HfName()}";
                var t = allocation?.For(i, k) ?? target;
                ReadOnlySpan<byte> prune = default;
                if (!update.ChoosesMask)
                {
                    (invalid, var seconds) = _selector.Select(host, gk, x.Of(k), metric, t, name);
                    score += seconds.Scoring;
                    mask += seconds.Masking;
                    if (invalid != null) break;
                    prune = _selector.Mask(host);
                    fingerprint?.Add(prune, (int)host.shape[0], (int)host.shape[1]);
                }
                sw.Restart();
                using (Nvtx.Range("masking"))
                    update.Apply(host, k, prune, t, name);
                mask += sw.Elapsed.TotalSeconds;
                if (!ReferenceEquals(host, w)) w.copy_(host);
            }
            if (invalid != null) break;
            model.Blocks[i].WriteBack(working);
            sw.Restart();
            if (i + 1 < model.Blocks.Count) inputs.Advance(i, working);
            double propagate = sw.Elapsed.TotalSeconds;
            forward += observe + propagate;
            timing?.Report(new BlockTiming(i, observe, score - s0, mask - m0, propagate));
        }
        return new PruneReport(label, target, invalid is null, invalid, invalid is null ? Sparsity(model) : [], score, mask, forward,
            invalid is null ? fingerprint?.Finish() : null);
    }

    /// <summary>The weight and its G as contiguous host tensors for the kernels (copies, in the caller's scope, when they are elsewhere).</summary>
    static (Tensor W, Tensor? G) OnHost(Tensor w, Tensor? g)
    {
        var host = w.device_type == DeviceType.CPU && w.is_contiguous() ? w : w.cpu().contiguous();
        if (g is not null && (g.device_type != DeviceType.CPU || !g.is_contiguous())) g = g.cpu().contiguous();
        return (host, g);
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
