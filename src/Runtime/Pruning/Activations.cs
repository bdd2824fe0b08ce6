using PrunerZero.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Pruning;

/// <summary>
/// X of every prunable linear of one block: per input column, Σ over calibration tokens of x², divided by
/// nsamples (Wanda's scaler_row). Sums are kept in float64 (detached from any dispose scope, so a hook
/// called inside a per-chunk scope may add to them); <see cref="Finish"/> gives float32 per column.
/// </summary>
public sealed class XStats : IDisposable
{
    readonly Dictionary<LinearKind, Tensor> _sum = new();
    Tensor? _lastInput;
    Tensor? _lastSq;

    public void Add(LinearKind kind, Tensor input)
    {
        using var scope = NewDisposeScope();
        // Q/K/V and Gate/Up share one input tensor: square-sum it once.
        if (!ReferenceEquals(input, _lastInput))
        {
            _lastSq?.Dispose();
            _lastInput = input;
            _lastSq = input.to(ScalarType.Float64).Squared().sum([0, 1]).DetachFromDisposeScope();
        }
        if (_sum.TryGetValue(kind, out var s)) s.PlusInPlace(_lastSq!);
        else _sum[kind] = _lastSq!.clone().DetachFromDisposeScope();
    }

    public float[] Finish(LinearKind kind, int nsamples)
    {
        using var scope = NewDisposeScope();
        return _sum[kind].DividedBy(nsamples).to(ScalarType.Float32).cpu().data<float>().ToArray();
    }

    public void Dispose()
    {
        foreach (var t in _sum.Values) t.Dispose();
        _sum.Clear();
        _lastSq?.Dispose();
        _lastSq = null;
        _lastInput = null;
    }
}

/// <summary>X of every block measured on the dense model in one pass over the calibration windows.</summary>
public sealed class DenseX
{
    readonly Dictionary<(int, LinearKind), float[]> _x = new();

    public float[] this[int layer, LinearKind kind] => _x[(layer, kind)];

    public static DenseX Compute(LlamaModel model, CalibrationSet calib, IProgress<string>? progress = null)
    {
        var result = new DenseX();
        using var range = Nvtx.Range("calibration");
        using var acts = new BlockActivations(model, calib);
        for (int i = 0; i < model.Blocks.Count; i++)
        {
            progress?.Report($"calibration: block {i + 1}/{model.Blocks.Count}");
            using var scope = NewDisposeScope();
            var working = model.Blocks[i].Float32();
            using var stats = new XStats();
            acts.Advance(i, working, stats.Add);   // one pass: X of block i on the way to block i + 1's inputs
            foreach (var k in LinearKinds.All) result._x[(i, k)] = stats.Finish(k, calib.NSamples);
        }
        return result;
    }
}
