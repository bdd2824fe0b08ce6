using PrunerZero.Kernels;

namespace PrunerZero.Runtime.Pruning;

/// <summary>X of one block's linears, as the block loop reads them; disposed after the block.</summary>
public interface IBlockX : IDisposable
{
    float[]? Of(LinearKind kind);
}

/// <summary>
/// Where the block loop's inputs come from: X per block (and the weight update's view of the calibration
/// inputs), and the step to the next block.
/// </summary>
public interface IBlockInputs : IDisposable
{
    /// <summary>X of block <paramref name="layer"/> (the float32 working copy <paramref name="working"/>), feeding the update's inputs on the way.</summary>
    IBlockX Observe(int layer, LlamaBlock working, IWeightUpdate update);

    /// <summary>Moves on to block <paramref name="layer"/> + 1 through the pruned <paramref name="working"/> block.</summary>
    void Advance(int layer, LlamaBlock working);
}

/// <summary>X measured once on the dense model (or none, for a metric without X): no forward pass while pruning.</summary>
public sealed class DenseInputs(DenseX? x) : IBlockInputs
{
    public IBlockX Observe(int layer, LlamaBlock working, IWeightUpdate update)
    {
        if (update.NeedsInputs) throw new InvalidOperationException("a weight update that needs the calibration inputs runs in the sequential protocol");
        return new Fixed(x, layer);
    }

    public void Advance(int layer, LlamaBlock working) { }

    public void Dispose() { }

    sealed class Fixed(DenseX? x, int layer) : IBlockX
    {
        public float[]? Of(LinearKind kind) => x?[layer, kind];
        public void Dispose() { }
    }
}

/// <summary>
/// Wanda's sequential protocol: the calibration hidden states (<see cref="BlockActivations"/>) run through each block
/// as pruned so far; one forward per block gives X (when <c>usesX</c>) and the update's inputs, and a second moves the
/// hidden states through the pruned block.
/// </summary>
public sealed class SequentialInputs(LlamaModel model, CalibrationSet calib, bool usesX) : IBlockInputs
{
    readonly BlockActivations _acts = new(model, calib);

    public IBlockX Observe(int layer, LlamaBlock working, IWeightUpdate update)
    {
        var xs = usesX ? new XStats() : null;
        using (Nvtx.Range("calibration"))
            if (update.NeedsInputs) _acts.Observe(layer, (k, t) => { xs?.Add(k, t); update.Observe(k, t); }, working);
            else if (xs != null) _acts.Observe(layer, xs.Add, working);
        return new Measured(xs, calib.NSamples);
    }

    public void Advance(int layer, LlamaBlock working) => _acts.Advance(layer, working);

    public void Dispose() => _acts.Dispose();

    sealed class Measured(XStats? xs, int nsamples) : IBlockX
    {
        public float[]? Of(LinearKind kind) => xs?.Finish(kind, nsamples);
        public void Dispose() => xs?.Dispose();
    }
}
