using CommandLine;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Pruning;

namespace PrunerZero.Cli;

/// <summary>
/// What every pruning verb (prune, score, search, bench, worker) uses: the model and its calibration
/// (<see cref="CalibrationOptions"/>), the target, the evaluation data, the G cache and the device. Options only some
/// verbs honour (--windows, --zeroshot*, --update) are in <see cref="PruneOptionsBase"/>, so no verb accepts an option
/// it ignores.
/// </summary>
public abstract class PruningSetupOptions : CalibrationOptions
{
    [Option("sparsity", HelpText = "Unstructured sparsity per row (default 0.5).")]
    public double? Sparsity { get; set; }

    [Option("nm", HelpText = "N:M semi-structured sparsity, e.g. 2:4 (instead of --sparsity).")]
    public string? NM { get; set; }

    [Option("allocation", HelpText = "How unstructured sparsity is spread over blocks: uniform (the default), owl (outlier-weighted, Yin et al. 2023) or an allocation profile FILE written by `allocate`. The overall sparsity stays the target.")]
    public string? AllocationOption { get; set; }

    [Option("owl-m", HelpText = "With --allocation owl: a score is an outlier above M times its block's mean Wanda score (default 5).")]
    public double? OwlM { get; set; }

    [Option("owl-lambda", HelpText = "With --allocation owl: block sparsities lie in [target - lambda, target + lambda] (default 0.08).")]
    public double? OwlLambda { get; set; }

    /// <summary>--allocation with its OWL parameters.</summary>
    public AllocationSpec Allocation() => AllocationSpec.Parse(AllocationOption ?? "uniform", OwlM, OwlLambda);

    [Option("dataset", HelpText = "Evaluation data: wikitext2 (default), a wiki.*.raw file or a wikitext parquet file.")]
    public string? Dataset { get; set; }

    [Option("cache", HelpText = "Cache folder for gradients (default: $PZ_CACHE or ~/.cache/prunerzero).")]
    public string? Cache { get; set; }

    [Option("device", HelpText = "Where the model runs and metrics are scored: cpu (the default; fused SIMD) or cuda (a CUDA TorchSharp build and ILGPU; refused in one line without them).")]
    public string? DeviceOption { get; set; }

    /// <summary>--device, cpu when not given.</summary>
    public string Device => DeviceOption ?? "cpu";

    /// <summary>The Kernels back end; a CUDA request on a machine without one is an error, never a silent fallback.</summary>
    public Kernels.IMetricBackend Backend() => Workflows.Setup.Backend(Device);

    public PruneTarget Target()
    {
        if (NM != null && Sparsity != null) throw new PrunerZeroException("give --sparsity or --nm, not both");
        return NM != null ? PruneTarget.ParseNM(NM) : PruneTarget.Unstructured(Sparsity ?? 0.5);
    }

    /// <summary>
    /// Checks every option against each other and against the model's config.json, before anything is loaded
    /// or computed: counts, the N:M group against every pruned layer's width, seqlen against the model.
    /// </summary>
    public virtual LlamaConfig Preflight(PruneTarget target)
    {
        if (NSamples <= 0) throw new PrunerZeroException($"--nsamples must be positive, got {NSamples}");
        if (Seqlen is < 2) throw new PrunerZeroException($"--seqlen must be at least 2, got {Seqlen}");
        Sampling();   // --calib-seed with stride sampling is refused here
        if (!Allocation().IsUniform && target.IsNM)
            throw new PrunerZeroException($"--allocation {AllocationOption} spreads unstructured sparsity; --nm {NM} is the same in every layer");
        return CheckModel(Defaults.Model(Model), target);
    }

    /// <summary>A checkpoint folder's config.json against --seqlen and the target.</summary>
    public LlamaConfig CheckModel(string modelDir, PruneTarget target) => Workflows.Setup.CheckModel(modelDir, Seqlen, target);

    /// <summary>The session: no --windows here (the one-shot verbs evaluate on their own window counts).</summary>
    public virtual SessionOptions Session() => new()
    {
        ModelDir = Defaults.Model(Model),
        CalibPath = CalibPath(),
        EvalPath = Defaults.Dataset(Dataset),
        NSamples = NSamples,
        Seqlen = Seqlen,
        Sampling = Sampling(),
        Seed = CalibSeed,
        CacheDir = Cache ?? SessionOptions.DefaultCacheDir(),
        EvalWindows = null,
        Device = Device,
        Allocation = Allocation(),
    };

    public static Kernels.Expr ParseMetric(string text)
    {
        try { return Kernels.Metrics.Resolve(text); }
        catch (Kernels.MetricParseException e) { throw new PrunerZeroException($"metric '{Kernels.MetricParseException.Excerpt(text, 0)}': {e.Message}"); }
    }
}

/// <summary>
/// The options of prune and score, which evaluate the pruned model: --windows of the perplexity, --zeroshot and its
/// tasks, and --update (OBS). The one-shot fitness verbs (search, bench, worker) have none of these.
/// </summary>
public abstract class PruneOptionsBase : PruningSetupOptions
{
    [Option("windows", HelpText = "Evaluate only the first K windows.")]
    public int? Windows { get; set; }

    [Option("zeroshot", HelpText = "Also report zero-shot accuracy (mean acc over the tasks; see the zeroshot verb).")]
    public bool ZeroShot { get; set; }

    [Option("zeroshot-tasks", Separator = ',', HelpText = "Tasks for --zeroshot (default: all).")]
    public IEnumerable<string>? ZeroShotTasks { get; set; }

    [Option("zeroshot-limit", HelpText = "First N items of each task for --zeroshot.")]
    public int? ZeroShotLimit { get; set; }

    /// <summary>The --zeroshot tasks, loaded (and checked) before any weights are; null when not asked for.</summary>
    public IReadOnlyList<Runtime.ZeroShot.ZeroShotTask>? LoadZeroShotTasks()
    {
        if (!ZeroShot) return null;
        if (ZeroShotLimit is <= 0) throw new PrunerZeroException($"--zeroshot-limit must be positive, got {ZeroShotLimit}");
        return ZeroShotCommand.LoadTasks(ZeroShotTasks?.ToList() is { Count: > 0 } t ? t : null);
    }

    [Option("update", Default = "none", HelpText = "none, or obs: after the metric's mask, SparseGPT's column sweep updates the kept weights (OBS).")]
    public string Update { get; set; } = "none";

    /// <summary>The metric or sparsegpt of a --metric argument or a library line, with --update.</summary>
    public PruneMethod ParseMethod(string text)
    {
        var update = PruneMethod.ParseUpdate(Update);
        try { return PruneMethod.Resolve(text, update); }
        catch (Kernels.MetricParseException e) { throw new PrunerZeroException($"metric '{Kernels.MetricParseException.Excerpt(text, 0)}': {e.Message}"); }
    }

    public override LlamaConfig Preflight(PruneTarget target)
    {
        if (Windows is <= 0) throw new PrunerZeroException($"--windows must be positive, got {Windows}");
        if (!ZeroShot && (ZeroShotTasks?.Any() == true || ZeroShotLimit is not null))
            throw new PrunerZeroException($"{(ZeroShotLimit is not null ? "--zeroshot-limit" : "--zeroshot-tasks")} applies to --zeroshot, which is not given");
        return base.Preflight(target);
    }

    public override SessionOptions Session() => base.Session() with { EvalWindows = Windows };
}
