using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Pruning;

/// <summary>
/// The one owner of the calibration hidden states: the calibration windows embedded (float32, in chunks of
/// <see cref="ChunkSize"/> windows), then moved through the decoder block by block. <see cref="Observe"/> runs
/// a block on every chunk with a hook on its linears' inputs and keeps nothing else; <see cref="Advance"/>
/// replaces each chunk by the block's output. Every chunk's forward runs in its own dispose scope, so the
/// only tensors alive between blocks are the chunks themselves (nsamples × seqlen × hidden × 4 bytes) and the
/// rotary tables: q, k, v, attention and SwiGLU intermediates live for one chunk of one block.
/// </summary>
public sealed class BlockActivations : IDisposable
{
    public const int ChunkSize = 8;

    /// <summary>
    /// Windows per chunk: <see cref="ChunkSize"/>, or fewer when one chunk's block intermediates would pass
    /// <see cref="ChunkBudget"/> bytes (a 7B model's block takes about 220 MB per 512-token window: 1 window).
    /// </summary>
    public static int ChunkFor(LlamaConfig c, int seqlen) =>
        (int)Math.Clamp(ChunkBudget / Math.Max(1, WindowActivationBytes(c, seqlen)), 1, ChunkSize);

    public const long ChunkBudget = 256L << 20;

    /// <summary>One window's intermediates through one block (float32): normed input, q, k, v, attention, scores, gate, up, act.</summary>
    public static long WindowActivationBytes(LlamaConfig c, int seqlen) =>
        4L * seqlen * (8L * c.HiddenSize + 4L * c.IntermediateSize + 2L * c.NumHeads * seqlen);
    readonly LlamaModel _model;
    readonly List<Tensor> _chunks = new();
    readonly Tensor _cos, _sin;

    public CalibrationSet Calibration { get; }

    /// <summary>The hidden states now, one (windows, seqlen, hidden) float32 tensor per chunk.</summary>
    public IReadOnlyList<Tensor> Chunks => _chunks;

    public BlockActivations(LlamaModel model, CalibrationSet calib)
    {
        _model = model;
        Calibration = calib;
        using var _ = no_grad();
        var (cos, sin) = model.Rope(calib.Seqlen);
        _cos = cos.DetachFromDisposeScope();
        _sin = sin.DetachFromDisposeScope();
        int chunk = ChunkFor(model.Config, calib.Seqlen);
        for (int s = 0; s < calib.NSamples; s += chunk)
        {
            using var scope = NewDisposeScope();
            var windows = calib.Windows[s..Math.Min(calib.NSamples, s + chunk)];
            var ids = tensor(windows.SelectMany(w => w).ToArray(), [windows.Length, calib.Seqlen]);
            _chunks.Add(model.EmbedTokens(ids).contiguous().DetachFromDisposeScope());
        }
    }

    /// <summary>Bytes these hidden states take (float32).</summary>
    public static long Bytes(LlamaConfig c, int nsamples, int seqlen) => 4L * nsamples * seqlen * c.HiddenSize;

    /// <summary>Runs block <paramref name="layer"/> (or the given float32 working copy of it) on every chunk, with <paramref name="hook"/> on its linears' inputs; the outputs are dropped.</summary>
    public void Observe(int layer, Action<LinearKind, Tensor> hook, LlamaBlock? working = null)
    {
        using var _ = no_grad();
        foreach (var h in _chunks)
        {
            using var scope = NewDisposeScope();
            Forward(layer, working, h, hook);
        }
    }

    /// <summary>X of block <paramref name="layer"/>'s linears on the current hidden states.</summary>
    public XStats ObserveX(int layer, LlamaBlock? working = null)
    {
        var stats = new XStats();
        Observe(layer, stats.Add, working);
        return stats;
    }

    /// <summary>
    /// Replaces every chunk by block <paramref name="layer"/>'s output (the block as it is now: pruned or not),
    /// with <paramref name="hook"/>, when given, on its linears' inputs on the way.
    /// </summary>
    public void Advance(int layer, LlamaBlock? working = null, Action<LinearKind, Tensor>? hook = null)
    {
        using var _ = no_grad();
        for (int c = 0; c < _chunks.Count; c++)
        {
            using var scope = NewDisposeScope();
            var next = Forward(layer, working, _chunks[c], hook).contiguous().DetachFromDisposeScope();
            _chunks[c].Dispose();
            _chunks[c] = next;
        }
    }

    Tensor Forward(int layer, LlamaBlock? working, Tensor h, Action<LinearKind, Tensor>? hook) =>
        working is null ? _model.BlockForward(layer, h, _cos, _sin, hook) : _model.BlockForward(working, h, _cos, _sin, hook);

    public void Dispose()
    {
        foreach (var c in _chunks) c.Dispose();
        _chunks.Clear();
        _cos.Dispose();
        _sin.Dispose();
    }
}
