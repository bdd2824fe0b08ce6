using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Training;

/// <summary>
/// AdamW as torch.optim.AdamW computes it (decoupled weight decay, bias-corrected moments, amsgrad off), and
/// torch.nn.utils.clip_grad_norm_, written here because TorchSharp 0.107's own AdamW.step and clip_grad_norm_
/// convert numbers to Scalars implicitly (about nine per parameter per step) and leave gradient handles to the
/// .NET finalizer. Every temporary here lives in a dispose scope and every Scalar is disposed. The moments are
/// float32 tensors owned by this object; <see cref="Save"/> and <see cref="Load"/> keep them for --resume.
/// </summary>
public sealed class AdamW : IDisposable
{
    public sealed record Group(IReadOnlyList<(string Name, Tensor Param)> Params, double WeightDecay);

    readonly List<Group> _groups;
    readonly Dictionary<string, (Tensor M, Tensor V)> _moments = new();
    readonly double _beta1, _beta2, _eps;

    /// <summary>Steps taken (the bias correction's t).</summary>
    public long Steps { get; private set; }

    public AdamW(IEnumerable<Group> groups, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8)
    {
        _groups = groups.ToList();
        (_beta1, _beta2, _eps) = (beta1, beta2, eps);
        using var _ = no_grad();
        foreach (var g in _groups)
            foreach (var (name, p) in g.Params)
                _moments[name] = (zeros_like(p).DetachFromDisposeScope(), zeros_like(p).DetachFromDisposeScope());
    }

    IEnumerable<(string Name, Tensor Param)> All => _groups.SelectMany(g => g.Params);

    /// <summary>Clears every parameter's gradient.</summary>
    public void ZeroGrad()
    {
        using var scope = NewDisposeScope();
        foreach (var (_, p) in All) p.grad?.zero_();
    }

    /// <summary>torch.nn.utils.clip_grad_norm_: scales all gradients by min(1, maxNorm / (‖g‖₂ + 1e-6)); returns ‖g‖₂.</summary>
    public double ClipGradNorm(double maxNorm)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var grads = All.Select(p => p.Param.grad).Where(g => g is not null).Select(g => g!).ToList();
        if (grads.Count == 0) return 0;
        var total = stack(grads.Select(g => g.norm()).ToArray()).norm();
        using var one = 1.0.ToScalar();
        var coef = total.Plus(1e-6).reciprocal().Times(maxNorm).clamp(max: one);
        foreach (var g in grads) g.mul_(coef);
        return total.item<float>();
    }

    /// <summary>One AdamW step at learning rate <paramref name="lr"/>.</summary>
    public void Step(double lr)
    {
        Steps++;
        double bc1 = 1 - Math.Pow(_beta1, Steps), bc2 = 1 - Math.Pow(_beta2, Steps);
        using var decay1 = (1 - _beta1).ToScalar();
        using var decay2 = (1 - _beta2).ToScalar();
        using var beta1 = _beta1.ToScalar();
        using var beta2 = _beta2.ToScalar();
        using var stepSize = (-lr / bc1).ToScalar();
        using var _ = no_grad();
        foreach (var g in _groups)
            foreach (var (name, p) in g.Params)
            {
                using var scope = NewDisposeScope();
                var grad = p.grad;
                if (grad is null) continue;
                var (m, v) = _moments[name];
                p.TimesInPlace(1 - lr * g.WeightDecay);
                m.mul_(beta1).add_(grad, decay1);
                v.mul_(beta2).addcmul_(grad, grad, decay2);
                var denom = v.sqrt().DividedBy(Math.Sqrt(bc2)).Plus(_eps);
                p.addcdiv_(m, denom, stepSize);
            }
    }

    /// <summary>The moments and the step count, as one safetensors file (written to a temporary name, then renamed).</summary>
    public void Save(string path)
    {
        var tensors = _moments.SelectMany(kv => new[] { ("m." + kv.Key, kv.Value.M), ("v." + kv.Key, kv.Value.V) }).ToList();
        SafeTensors.Write(path, tensors, new Dictionary<string, string> { ["step"] = Steps.ToString(System.Globalization.CultureInfo.InvariantCulture) });
    }

    /// <summary>Reads what <see cref="Save"/> wrote; every moment must be there with its parameter's shape.</summary>
    public void Load(string path)
    {
        var (entries, dataStart, meta) = SafeTensors.ReadHeaderAndMetadata(path);
        var byName = entries.ToDictionary(e => e.Name);
        if (!meta.TryGetValue("step", out var step) || !long.TryParse(step, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long steps))
            throw new PrunerZeroException($"{path}: no step count in its metadata: not an optimizer state written by this program");
        using var _ = no_grad();
        foreach (var (name, (m, v)) in _moments)
            foreach (var (key, t) in new[] { ("m." + name, m), ("v." + name, v) })
            {
                if (!byName.TryGetValue(key, out var e) || !e.Shape.SequenceEqual(t.shape))
                    throw new PrunerZeroException($"{path}: '{key}' is missing or has another shape: not this model's optimizer state");
                using var saved = SafeTensors.Read(e, dataStart);
                t.copy_(saved);
            }
        Steps = steps;
    }

    public void Dispose()
    {
        foreach (var (m, v) in _moments.Values) { m.Dispose(); v.Dispose(); }
        _moments.Clear();
    }
}
