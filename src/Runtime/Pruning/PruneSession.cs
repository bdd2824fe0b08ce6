using PrunerZero.Kernels;

namespace PrunerZero.Runtime.Pruning;

public sealed record SessionOptions
{
    public required string ModelDir { get; init; }
    public required string CalibPath { get; init; }
    public required string EvalPath { get; init; }
    public int NSamples { get; init; } = 128;
    public int? Seqlen { get; init; }
    public CalibSampling Sampling { get; init; } = CalibSampling.Random;
    public int Seed { get; init; } = 0;
    public string CacheDir { get; init; } = DefaultCacheDir();
    public int? EvalWindows { get; init; }
    /// <summary>Where the model's tensors live: cpu, or cuda with a CUDA build of TorchSharp.</summary>
    public string Device { get; init; } = "cpu";
    /// <summary>How unstructured sparsity is spread over blocks (<see cref="PruneSession.AllocationFor"/>).</summary>
    public AllocationSpec Allocation { get; init; } = AllocationSpec.Uniform;

    public static string DefaultCacheDir() =>
        Environment.GetEnvironmentVariable("PZ_CACHE") is { Length: > 0 } c ? c
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "prunerzero");
}

/// <summary>
/// One dense model with everything pruning needs, loaded once: tokenizer, calibration windows, G (lazily,
/// cached on disk), and the evaluation tokens. <see cref="PruneAndEvaluate"/> restores the dense weights
/// first, so every metric starts from the same dense state with one copy of the weights in memory.
/// </summary>
public sealed class PruneSession : IDisposable
{
    public SessionOptions Options { get; }
    public LlamaModel Model { get; }
    public TextTokenizer Tokenizer { get; }
    public CalibrationSet Calibration { get; }
    public int[] EvalTokens { get; }
    public long EvalBytes { get; }
    public int Seqlen { get; }
    readonly TextWriter _log;
    readonly IProgress<string>? _progress;
    GradientStats? _g;
    string? _modelSha256;
    DenseX? _x;
    bool _dirty;
    /// <summary>The one-shot pruning the model holds now, from <see cref="PruneOneShot"/> with reuse; cleared by any other change.</summary>
    (Expr Metric, PruneTarget Target, SparsityAllocation? Allocation, PruneReport Report)? _held;
    public double GradientSeconds { get; private set; }
    public double CalibrationSeconds { get; private set; }
    public double RestoreSeconds { get; private set; }
    public double LoadSeconds { get; }
    /// <summary>Bytes of the checkpoint's tensors as stored (and as held in memory).</summary>
    public long WeightBytes { get; }
    public MemoryPlan Plan { get; }

    /// <param name="identity">The run's identity when the caller has one: its model hash keys the G cache (no second hashing).</param>
    public PruneSession(SessionOptions o, TextWriter log, IProgress<string>? progress = null, RunIdentity? identity = null)
    {
        Options = o;
        _modelSha256 = identity?.ModelSha256;
        _log = log;
        _progress = progress;
        var config = LlamaConfig.Load(Path.Combine(Checkpoint.RequireDirectoryAnd(o.ModelDir), "config.json"));
        Tokenizer = TextTokenizer.Load(o.ModelDir, config);
        Seqlen = o.Seqlen ?? Perplexity.DefaultSeqlen(config);
        (EvalTokens, EvalBytes) = Corpus.Tokenize(o.EvalPath, Tokenizer, progress);
        Perplexity.WindowCount(EvalTokens.Length, Seqlen, o.EvalPath);
        Corpus.CheckTokenIds(EvalTokens, config.VocabSize, o.EvalPath);
        Calibration = CalibrationSet.Build(o.CalibPath, Tokenizer, o.NSamples, Seqlen, o.Sampling, o.Seed);
        Corpus.CheckTokenIds(Calibration.Windows.SelectMany(w => w.Select(t => (int)t)), config.VocabSize, o.CalibPath);
        WeightBytes = Checkpoint.TensorBytes(o.ModelDir);
        Plan = MemoryPlan.For(config, WeightBytes, o.NSamples, Seqlen);
        log.WriteLine(Plan.Describe(withG: false));
        MemoryPlan.Check(config, WeightBytes, o.NSamples, Seqlen, withG: false, MemoryPlan.AvailableBytes());
        var device = Devices.Parse(o.Device);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        Model = Checkpoint.Load(o.ModelDir, progress, keepDtype: true, device);
        LoadSeconds = sw.Elapsed.TotalSeconds;
    }

    /// <summary>The pruning protocol in words (no path: a moved model folder is the same model; its content is in the <see cref="RunIdentity"/>).</summary>
    public string Protocol(PruneTarget target) =>
        $"data={Path.GetFileName(Options.EvalPath)} seqlen={Seqlen} {Calibration.Describe()} target={target}" +
        (Options.Allocation.IsUniform ? "" : $" allocation={Options.Allocation.Id}");

    public GradientStats Gradients
    {
        get
        {
            if (_g != null) return _g;
            RestoreDense();   // G is always taken on the dense model
            MemoryPlan.Check(Model.Config, WeightBytes, Options.NSamples, Seqlen, withG: true, MemoryPlan.AvailableBytes() + Model.WeightBytes);
            var sw = System.Diagnostics.Stopwatch.StartNew();
            _g = GradientStats.LoadOrCompute(Model, Options.ModelDir, Calibration, Options.CacheDir, _progress, _log, ModelSha256);
            GradientSeconds = sw.Elapsed.TotalSeconds;
            return _g;
        }
    }

    /// <summary>X of every block on the dense model, measured once (for one-shot pruning).</summary>
    public DenseX DenseStats
    {
        get
        {
            if (_x != null) return _x;
            RestoreDense();
            var sw = System.Diagnostics.Stopwatch.StartNew();
            _x = DenseX.Compute(Model, Calibration, _progress);
            CalibrationSeconds = sw.Elapsed.TotalSeconds;
            return _x;
        }
    }

    public void RestoreDense()
    {
        _held = null;
        if (!_dirty) return;
        var sw = System.Diagnostics.Stopwatch.StartNew();
        Checkpoint.RestoreLinears(Model, Options.ModelDir);
        RestoreSeconds += sw.Elapsed.TotalSeconds;
        _dirty = false;
    }

    /// <summary>
    /// Prunes the dense model one-shot with X and G measured once on the dense model (the search's protocol). With
    /// <paramref name="reuse"/>, the report carries the mask fingerprint, and a model that already holds this metric's
    /// one-shot pruning at this target is left as it is and its report returned: a search candidate is scored once
    /// for its fingerprint and its evaluation.
    /// </summary>
    public PruneReport PruneOneShot(Expr metric, PruneTarget target, IMetricBackend backend, bool reuse = false, SparsityAllocation? allocation = null)
    {
        allocation ??= AllocationFor(target);
        if (reuse && _held is { } held && held.Metric == metric && held.Target == target && held.Allocation == allocation) return held.Report;
        var g = metric.UsesG ? Gradients : null;
        var x = metric.UsesX ? DenseStats : null;
        RestoreDense();
        _dirty = true;
        var report = new Pruner(backend).PruneOneShot(Model, x, g, metric, target, fingerprint: reuse, allocation);
        if (reuse) _held = (metric, target, allocation, report);
        return report;
    }

    /// <summary>Prunes the dense model with the metric (sequential protocol); the model stays pruned until the next call.</summary>
    public PruneReport Prune(Expr metric, PruneTarget target, IMetricBackend backend, IProgress<BlockTiming>? timing = null,
        SparsityAllocation? allocation = null)
    {
        allocation ??= AllocationFor(target);   // before the model changes: OWL reads the dense weights
        var g = metric.UsesG ? Gradients : null;
        RestoreDense();
        _dirty = true;
        return new Pruner(backend).PruneSequential(Model, Calibration, g, metric, target, _progress, timing, allocation: allocation);
    }

    /// <summary>
    /// Prunes the dense model with a method (sequential protocol): a metric alone, a metric followed by the OBS
    /// update, or SparseGPT (<see cref="SparseGpt"/>). What the update cannot do on this model is refused first.
    /// </summary>
    public PruneReport Prune(PruneMethod method, PruneTarget target, IMetricBackend backend, SparsityAllocation? allocation = null)
    {
        allocation ??= AllocationFor(target);
        if (method.Update == WeightUpdate.None) return Prune(method.Metric, target, backend, allocation: allocation);
        ObsUpdate.CheckModel(Model.Config, target, HessianStats.AvailableBytes(), method.ToString());
        var g = method.Metric.UsesG ? Gradients : null;
        RestoreDense();
        _dirty = true;
        using var obs = new ObsUpdate(method.SparseGptMask);
        var report = new Pruner(backend).PruneSequential(Model, Calibration, g, method.Metric, target, _progress, obs: obs, allocation: allocation);
        return report with { Metric = method.ToString() };
    }

    SparsityAllocation? _allocation;

    /// <summary>
    /// The options' allocation resolved for this model and <paramref name="target"/> (computed once): null for uniform;
    /// refused for N:M, which has no per-block sparsity.
    /// </summary>
    public SparsityAllocation? AllocationFor(PruneTarget target)
    {
        var spec = Options.Allocation;
        if (spec.IsUniform) return null;
        if (target.IsNM) throw new PrunerZeroException($"{UserError.P("allocation")} {spec.Kind} spreads unstructured sparsity; N:M {target} is the same in every layer (use {UserError.P("sparsity")})");
        if (_allocation is { } a && a.Target == target.Sparsity) return a;
        _allocation = spec.Kind == "owl" ? Owl(target.Sparsity, spec.M, spec.Lambda)
            : SparsityAllocation.Load(spec.File!, Model.Blocks.Count, KindSizes(), target.Sparsity, ModelSha256);
        _log.WriteLine($"allocation: {_allocation}");
        if (_allocation.OtherModel is { } other)
            _log.WriteLine($"note: the allocation profile {spec.File} was made for another model (model_sha256 {other[..Math.Min(12, other.Length)]}…, this one {ModelSha256[..12]}…); it is applied block by block");
        return _allocation;
    }

    /// <summary><see cref="ContentHash.OfCheckpoint"/> of the model folder (the run identity's, when given; else hashed once, here).</summary>
    public string ModelSha256 => _modelSha256 ??= ContentHash.OfCheckpoint(Options.ModelDir);

    /// <summary>OWL's per-block sparsities for <paramref name="target"/> (<see cref="Pruning.Owl"/>), from X measured on the dense model.</summary>
    public SparsityAllocation Owl(double target, double m = Pruning.Owl.DefaultM, double lambda = Pruning.Owl.DefaultLambda)
    {
        var x = DenseStats;
        RestoreDense();
        return Pruning.Owl.Allocate(Model, x, target, m, lambda);
    }

    /// <summary>Weights of one block's linears by kind (<see cref="LinearKinds.All"/> order), for allocation profiles.</summary>
    public long[] KindSizes() => LinearKinds.All.Select(k => Model.Blocks[0][k].NumberOfElements).ToArray();

    /// <summary>Perplexity of the model as it is now; <paramref name="spread"/> takes the windows evenly spaced over the text.</summary>
    public PerplexityResult Evaluate(int? windows = null, bool spread = false) =>
        Perplexity.Evaluate(Model, Options.ModelDir, EvalTokens, EvalBytes, Path.GetFileName(Options.EvalPath), Seqlen,
            windows ?? Options.EvalWindows, _progress, spread);

    public void Dispose()
    {
        _g?.Dispose();
        Model.Dispose();
    }
}
