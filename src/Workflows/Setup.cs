using PrunerZero.Kernels;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Pruning;

namespace PrunerZero.Workflows;

/// <summary>What every pruning workflow sets up the same way: the metric back end and the checks of a model against the settings.</summary>
public static class Setup
{
    /// <summary>The Kernels back end; a CUDA request on a machine without one is an error, never a silent fallback.</summary>
    public static IMetricBackend Backend(string device) => device.ToLowerInvariant() switch
    {
        "cpu" => new CpuBackend(),
        "cuda" => CreateCuda(),
        _ => throw new PrunerZeroException($"{UserError.P("device")} must be cpu or cuda, got '{device}'"),
    };

    static IMetricBackend CreateCuda()
    {
        Devices.Parse("cuda");   // the model's tensors go there too: refuse first when TorchSharp has no CUDA
        try { return IlgpuBackend.Create(preferCuda: true); }
        catch (InvalidOperationException e) { throw new PrunerZeroException($"{UserError.P("device")} cuda: {e.Message}"); }
    }

    /// <summary>A checkpoint folder's config.json against the sequence length and the target (the search model, and each transfer model).</summary>
    public static LlamaConfig CheckModel(string modelDir, int? seqlen, PruneTarget target)
    {
        var config = LlamaConfig.Load(Path.Combine(Checkpoint.RequireDirectoryAnd(modelDir), "config.json"));
        if (seqlen > config.MaxPositionEmbeddings)
            throw new PrunerZeroException($"{UserError.P("seqlen")} {seqlen} exceeds the model's max_position_embeddings {config.MaxPositionEmbeddings}");
        CheckTarget(target, config);
        return config;
    }

    /// <summary>N:M needs M to divide the input width of every pruned linear (q, k, v, gate, up: hidden_size; o: heads × head_dim; down: intermediate_size).</summary>
    public static void CheckTarget(PruneTarget target, LlamaConfig c)
    {
        if (!target.IsNM) return;
        foreach (var (width, what) in new[] { (c.HiddenSize, "hidden_size (q, k, v, gate, up projections)"),
                     (c.NumHeads * c.HeadDim, "num_attention_heads x head_dim (o projection)"), (c.IntermediateSize, "intermediate_size (down projection)") })
            if (width % target.M != 0)
                throw new PrunerZeroException($"{UserError.P("nm")} {target.N}:{target.M}: groups of {target.M} must divide every pruned layer's input width, but {what} is {width}");
    }
}
