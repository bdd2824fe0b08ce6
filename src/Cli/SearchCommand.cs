using CommandLine;
using PrunerZero.Kernels;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Pruning;
using PrunerZero.Search;

namespace PrunerZero.Cli;

[Verb("search", HelpText = "Search for a symbolic pruning metric by genetic programming (Pruner-Zero, Algorithm 1).")]
public sealed class SearchOptionsCli : PruningSetupOptions
{
    [Option("run", Required = true, HelpText = "Run folder: search.db and the report files.")]
    public string Run { get; set; } = "";

    [Option("population", Default = 50)] public int Population { get; set; }
    [Option("iterations", Default = 300)] public int Iterations { get; set; }
    [Option("min-depth", Default = 3, HelpText = "Minimum tree height (a terminal has height 0), as DEAP counts depth.")] public int MinDepth { get; set; }
    [Option("max-depth", Default = 5)] public int MaxDepth { get; set; }
    [Option("top-k", Default = 10, HelpText = "Parents are drawn from the k best.")] public int TopK { get; set; }
    [Option("mutation", Default = 0.5, HelpText = "Probability of node mutation.")] public double Mutation { get; set; }
    [Option("seed", Default = 0, HelpText = "Seed of the search.")] public long Seed { get; set; }
    [Option("resume", HelpText = "Continue the run in --run (its parameters must match).")] public bool Resume { get; set; }

    [Option("screen-windows", Default = Defaults.ScreenWindows, HelpText = "Windows of the fast fitness, evenly spaced over the test split.")]
    public int ScreenWindows { get; set; }

    [Option("report-top", Default = 10, HelpText = "Leaders re-checked on the full test split and reported.")]
    public int ReportTop { get; set; }

    [Option("batch", Default = 1, HelpText = "Children per batch, made from the population at the batch start and evaluated together; part of the run's identity.")]
    public int Batch { get; set; }

    [Option("cluster", HelpText = "Evaluate on the workers of this cluster: localhost[:PORT] or redis://HOST:PORT[/NAME] (see `worker`).")]
    public string? Cluster { get; set; }

    [Option("wait", HelpText = "With --cluster: seconds to wait for a reachable, compatible worker before failing (default 300).")]
    public int? WaitOption { get; set; }

    /// <summary>--wait, 300 when not given.</summary>
    public int Wait => WaitOption ?? 300;

    [Option("transfer-model", Separator = ',', HelpText = "Other checkpoints (DIR[,DIR...]): after the full re-check, the leaders and baselines are pruned and evaluated on each with the same full protocol, one model loaded at a time (a transfer table per model in report.md, all rows in transfer.csv).")]
    public IEnumerable<string> TransferModels { get; set; } = [];
}

/// <summary>
/// Search fitness: the model pruned one-shot with the candidate (X and G measured once on the dense model),
/// then WikiText-2 perplexity: on evenly spaced screen windows, or on the full test split for leaders.
/// One model in memory, so evaluations run one at a time (LibTorch already uses every core in the forward).
/// </summary>
public sealed class PruningFitness(PruneSession session, PruneTarget target, IMetricBackend backend, int screenWindows, int batch = 1)
    : IFitness, IMaskFingerprint
{
    readonly Lock _lock = new();

    /// <summary>Windows of <see cref="Screen"/>.</summary>
    public int ScreenWindows => screenWindows;

    public string FingerprintMethod => $"{Kernels.MaskFingerprint.Method}, screen protocol, {target}";

    /// <summary>
    /// The masks Screen applies, hashed as the model is pruned with them (no forward pass); the model stays pruned, so
    /// Screen of the same metric next scores nothing again.
    /// </summary>
    public string? MaskFingerprint(Expr metric, CancellationToken ct)
    {
        lock (_lock) return session.PruneOneShot(metric, target, backend, reuse: true).MaskFingerprint;
    }

    public string Protocol =>
        $"{session.Protocol(target)} pruning=one-shot(dense X, G) screen_windows={screenWindows}(spread) full=all windows";

    /// <summary>The search's batch; the lock still runs one evaluation at a time.</summary>
    public int MaxParallelism => batch;

    public FitnessResult Screen(Expr metric, CancellationToken ct) => Evaluate(metric, screenWindows);

    public FitnessResult Full(Expr metric, CancellationToken ct) => Evaluate(metric, null);

    FitnessResult Evaluate(Expr metric, int? windows)
    {
        lock (_lock)
        {
            using var range = Nvtx.Range(windows is null ? "search full check" : "search iteration");
            var sw = System.Diagnostics.Stopwatch.StartNew();
            var report = session.PruneOneShot(metric, target, backend, reuse: true);
            if (!report.Valid) return FitnessResult.Invalid(report.InvalidReason ?? "invalid", sw.Elapsed.TotalSeconds);
            var ppl = session.Evaluate(windows, spread: windows is not null);
            if (!double.IsFinite(ppl.Perplexity)) return FitnessResult.Invalid($"perplexity is {ppl.Perplexity}", sw.Elapsed.TotalSeconds);
            return new FitnessResult(true, ppl.Perplexity, null, sw.Elapsed.TotalSeconds);
        }
    }
}

public static class SearchCommand
{
    public static int Run(SearchOptionsCli o)
    {
        var target = o.Target();
        Validate(o);
        o.Preflight(target);
        var inputs = RunInputs(o);
        var progress = new ProgressLine();
        var log = new ProgressAwareWriter(progress, Console.Error);
        var transfers = Transfer.CheckAll(o, target, log, progress);
        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); log.WriteLine("stopping after the current evaluation; continue with --resume"); };
        using var resources = new Resources();
        IFitness fitness;
        if (o.Cluster is not null)
            fitness = resources.Add(ClusterWiring.ConnectSearch(o, log, cts.Token));
        else
        {
            var backend = resources.Add(o.Backend());
            var session = resources.Add(new PruneSession(o.Session() with { EvalWindows = null }, log, progress));
            fitness = new PruningFitness(session, target, backend, o.ScreenWindows, o.Batch);
        }
        log.WriteLine($"search: population {o.Population}, iterations {o.Iterations}, height {o.MinDepth}..{o.MaxDepth}, top-k {o.TopK}, mutation {o.Mutation}, seed {o.Seed}, batch {o.Batch}");
        log.WriteLine($"fitness: {fitness.Protocol}");

        SearchReport report;
        try
        {
            report = SearchRun.Run(new Search.SearchOptions
            {
                RunDir = o.Run, Population = o.Population, Iterations = o.Iterations, MinHeight = o.MinDepth, MaxHeight = o.MaxDepth,
                TopK = o.TopK, Mutation = o.Mutation, Seed = o.Seed, Resume = o.Resume, ReportTop = o.ReportTop,
                Protocol = $"target={target}", Inputs = inputs, Transfers = transfers,
            }, fitness, new SearchProgress(log), cts.Token);
        }
        catch (RunParametersMismatchException e) { throw new PrunerZeroException(e.Message); }
        catch (RunStoreException e) { throw new PrunerZeroException(e.Message); }
        catch (OperationCanceledException) { throw new PrunerZeroException($"search stopped; resume with --resume --run {o.Run}"); }
        catch (Cluster.ClusterUnavailableException e) { throw new PrunerZeroException(e.Message); }
        progress.Done();

        Console.WriteLine(fitness.Protocol);
        Console.WriteLine($"{"rank",4}  {"screen ppl",10}  {"full ppl",10}  metric");
        int rank = 1;
        foreach (var c in report.Top)
            Console.WriteLine($"{rank++,4}  {c.Screen.Perplexity,10:0.000}  {(c.Full is { Valid: true } f ? f.Perplexity.ToString("0.000") : "-"),10}  {c.Expr}");
        foreach (var b in report.Baselines)
            Console.WriteLine($"{"base",4}  {b.Screen.Perplexity,10:0.000}  {b.Full.Perplexity,10:0.000}  {b.Name} = {b.Expr}");
        if (report.Best is { } best) Console.WriteLine($"best: {best.Expr}  (full perplexity {best.Full?.Perplexity:0.000})");
        foreach (var tr in report.Transfers) Transfer.Print(tr);
        Console.WriteLine($"evaluations {report.Evaluations} (this process {report.FitnessCalls}), cache hits {report.CacheHits}, same mask {report.SameMask}");
        if (fitness is Cluster.ClusterFitness cf) Console.WriteLine(cf.Rates());
        foreach (var (kind, path) in report.Files) Console.WriteLine($"{kind}: {path}");
        return 0;
    }

    /// <summary>Disposed in reverse order of creation (the session before the back end it uses).</summary>
    sealed class Resources : IDisposable
    {
        readonly Stack<IDisposable> _all = new();
        public T Add<T>(T d) where T : IDisposable { _all.Push(d); return d; }
        public void Dispose() { while (_all.Count > 0) _all.Pop().Dispose(); }
    }

    /// <summary>What a search writes in its --run folder.</summary>
    static readonly string[] RunFiles =
        [RunStore.FileName, RunStore.FileName + "-wal", RunStore.FileName + "-shm", RunStore.LockFileName, "report.md", "report.json",
         "history.csv", "fitness.png", "best.json", "best.txt", "transfer.csv", "workers.csv"];

    /// <summary>Every search option, checked with its flag's name before anything is loaded.</summary>
    static void Validate(SearchOptionsCli o)
    {
        if (o.Population < 1) throw new PrunerZeroException($"--population must be at least 1, got {o.Population}");
        if (o.Iterations < 0) throw new PrunerZeroException($"--iterations must be 0 or more, got {o.Iterations}");
        if (o.MinDepth < 0) throw new PrunerZeroException($"--min-depth must be 0 or more, got {o.MinDepth}");
        if (o.MaxDepth < o.MinDepth) throw new PrunerZeroException($"--max-depth ({o.MaxDepth}) must be at least --min-depth ({o.MinDepth})");
        if (o.MaxDepth > Trees.MaxSearchHeight) throw new PrunerZeroException($"--max-depth must be at most {Trees.MaxSearchHeight}, got {o.MaxDepth}");
        if (o.TopK < 1) throw new PrunerZeroException($"--top-k must be at least 1, got {o.TopK}");
        if (!(o.Mutation >= 0 && o.Mutation <= 1)) throw new PrunerZeroException($"--mutation must be a probability in [0, 1], got {o.Mutation}");
        if (o.ScreenWindows < 1) throw new PrunerZeroException($"--screen-windows must be at least 1, got {o.ScreenWindows}");
        if (o.Batch < 1) throw new PrunerZeroException($"--batch must be at least 1, got {o.Batch}");
        if (o.ReportTop < 1) throw new PrunerZeroException($"--report-top must be at least 1, got {o.ReportTop}");
        // Options this search would not use are refused, never ignored.
        if (o.Cluster is null && o.WaitOption is not null) throw new PrunerZeroException("--wait applies to --cluster, which is not given");
        if (o.Cluster is not null && !o.TransferModels.Any())
        {
            // The workers load the model, compute G and choose their device; this process evaluates nothing.
            if (o.Cache is not null) throw new PrunerZeroException("--cache is not used with --cluster (each worker keeps its own G cache; give --cache to `worker`)");
            if (o.DeviceOption is not null) throw new PrunerZeroException("--device is not used with --cluster (each worker has its own; give --device to `worker`)");
        }

        if (o.Cluster is not null)
        {
            ClusterWiring.Spec(o.Cluster);   // a malformed SPEC is refused now, not after hashing and loading
            if (o.Wait < 1) throw new PrunerZeroException($"--wait must be at least 1 second, got {o.Wait}");
        }

        // The one output rule (VerbPaths): --run and --cache are no input and hold none where the search writes.
        var paths = CliPaths.Pruning(o);
        foreach (var t in o.TransferModels) paths.InputFolder("--transfer-model", t);
        CliPaths.Cache(paths, o);
        paths.OutputFolder("--run", o.Run, RunFiles);

        // The run folder: writable, not holding a run unless resuming, not in use. RunStore checks all of this again
        // under its lock; here it fails before the model is loaded.
        if (!Directory.Exists(o.Run)) return;   // a new run: nothing to hold or lock yet
        string db = Path.Combine(o.Run, RunStore.FileName);
        if (File.Exists(db) || Path.Exists(db))
        {
            // Read-only: a file that is not this program's run (another program's SQLite, an empty file) is refused unchanged.
            try { RunStore.Recognise(db); }
            catch (RunStoreException e) { throw new PrunerZeroException(e.Message); }
            if (!o.Resume)
                throw new PrunerZeroException($"{db} already holds a search run; pass --resume to continue it, or choose a new --run directory");
        }
        try { RunStore.AcquireLock(o.Run).Dispose(); }
        catch (RunStoreException e) { throw new PrunerZeroException(e.Message); }
    }

    /// <summary>The run's inputs by content (SHA-256): a resume on other files with the same names is refused.</summary>
    static Dictionary<string, string> RunInputs(SearchOptionsCli o)
    {
        var s = o.Session();
        return new()
        {
            ["model_sha256"] = ContentHash.OfCheckpoint(s.ModelDir),
            ["dataset_sha256"] = ContentHash.OfFile(s.EvalPath),
            ["calibration_sha256"] = ContentHash.OfFile(s.CalibPath),
        };
    }

    /// <summary>The search's own lines are kept (one per iteration); the session's per-window lines are not repeated here.</summary>
    sealed class SearchProgress(TextWriter log) : IProgress<string>
    {
        public void Report(string value) => log.WriteLine(value);
    }
}
