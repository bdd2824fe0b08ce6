using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Pruning;

/// <summary>What pruning does to a linear once its mask is chosen: zero the pruned weights, or the OBS update.</summary>
public interface IWeightUpdate
{
    /// <summary>Whether it needs the block's calibration inputs (<see cref="Observe"/>) before <see cref="Apply"/>.</summary>
    bool NeedsInputs { get; }

    /// <summary>Whether it chooses the mask itself (SparseGPT): then <see cref="Apply"/> gets an empty mask.</summary>
    bool ChoosesMask { get; }

    void BeginBlock();

    /// <summary>One linear's input during the block's calibration forward.</summary>
    void Observe(LinearKind kind, Tensor input);

    /// <summary>Prunes one contiguous CPU float32 weight in place with <paramref name="prune"/> (1 = pruned).</summary>
    void Apply(Tensor weight, LinearKind kind, ReadOnlySpan<byte> prune, PruneTarget target, string name);
}

/// <summary>Plain pruning: the masked weights become zero, the others stay as they are.</summary>
public sealed class Zeroing : IWeightUpdate
{
    public static readonly Zeroing Instance = new();

    public bool NeedsInputs => false;
    public bool ChoosesMask => false;
    public void BeginBlock() { }
    public void Observe(LinearKind kind, Tensor input) { }

    public void Apply(Tensor weight, LinearKind kind, ReadOnlySpan<byte> prune, PruneTarget target, string name)
    {
        var w = MemoryMarshal.Cast<byte, float>(weight.bytes);
        for (int i = 0; i < prune.Length; i++) if (prune[i] != 0) w[i] = 0f;
    }
}
