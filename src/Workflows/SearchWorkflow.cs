// `search`: the run identity (inputs hashed once), the transfer models checked, the fitness (in this process, or a
// cluster's workers), the GP search on its store, then the transfer step on the same store and the report files.
using PrunerZero.Cluster;
using PrunerZero.Kernels;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Pruning;
using PrunerZero.Search;

namespace PrunerZero.Workflows;

/// <summary>What a search hands back to be printed: its report (with transfers and files) and how it was evaluated.</summary>
/// <param name="FitnessProtocol">The fitness's protocol, as stored in the run.</param>
/// <param name="ClusterRates">With a cluster: the workers' rates line; null otherwise.</param>
public sealed record SearchOutcome(SearchReport Report, string FitnessProtocol, string? ClusterRates);

public static class SearchWorkflow
{
    /// <summary>What a search writes in its run folder.</summary>
    public static readonly IReadOnlyList<string> RunFiles =
        [RunStore.FileName, RunStore.FileName + "-wal", RunStore.FileName + "-shm", RunStore.LockFileName, "report.md", "report.json",
         "history.csv", "fitness.png", "best.json", "best.txt", "transfer.csv", "workers.csv"];

    /// <summary>Every search setting, checked before anything is loaded.</summary>
    public static void Check(SearchSettings s, bool waitGiven, bool cacheGiven, bool deviceGiven)
    {
        static string P(string p) => UserError.P(p);
        if (s.Population < 1) throw new PrunerZeroException($"{P("population")} must be at least 1, got {s.Population}");
        if (s.Iterations < 0) throw new PrunerZeroException($"{P("iterations")} must be 0 or more, got {s.Iterations}");
        if (s.MinDepth < 0) throw new PrunerZeroException($"{P("min_depth")} must be 0 or more, got {s.MinDepth}");
        if (s.MaxDepth < s.MinDepth) throw new PrunerZeroException($"{P("max_depth")} ({s.MaxDepth}) must be at least {P("min_depth")} ({s.MinDepth})");
        if (s.MaxDepth > Trees.MaxSearchHeight) throw new PrunerZeroException($"{P("max_depth")} must be at most {Trees.MaxSearchHeight}, got {s.MaxDepth}");
        if (s.TopK < 1) throw new PrunerZeroException($"{P("top_k")} must be at least 1, got {s.TopK}");
        if (!(s.Mutation >= 0 && s.Mutation <= 1)) throw new PrunerZeroException($"{P("mutation")} must be a probability in [0, 1], got {s.Mutation}");
        if (s.ScreenWindows < 1) throw new PrunerZeroException($"{P("screen_windows")} must be at least 1, got {s.ScreenWindows}");
        CheckStages(s.Stages, s.ScreenWindows);
        if (s.Batch < 1) throw new PrunerZeroException($"{P("batch")} must be at least 1, got {s.Batch}");
        if (s.ReportTop < 1) throw new PrunerZeroException($"{P("report_top")} must be at least 1, got {s.ReportTop}");
        // Settings this search would not use are refused, never ignored.
        if (s.Cluster is null && waitGiven) throw new PrunerZeroException($"{P("wait")} applies to {P("cluster")}, which is not given");
        if (s.Cluster is not null && s.TransferModels.Count == 0)
        {
            // The workers load the model, compute G and choose their device; this process evaluates nothing.
            if (cacheGiven) throw new PrunerZeroException($"{P("cache")} is not used with {P("cluster")} (each worker keeps its own G cache; give {P("cache")} to `worker`)");
            if (deviceGiven) throw new PrunerZeroException($"{P("device")} is not used with {P("cluster")} (each worker has its own; give {P("device")} to `worker`)");
        }
        if (s.Cluster is not null)
        {
            ClusterSpec.Parse(s.Cluster);   // a malformed SPEC is refused now, not after hashing and loading
            if (s.Wait < 1) throw new PrunerZeroException($"{P("wait")} must be at least 1 second, got {s.Wait}");
        }
    }

    /// <summary>
    /// The run folder: not holding a run unless resuming, not in use. RunStore checks all of this again under its
    /// lock; here it fails before the model is loaded.
    /// </summary>
    public static void CheckRunFolder(string runDir, bool resume)
    {
        if (!Directory.Exists(runDir)) return;   // a new run: nothing to hold or lock yet
        string db = Path.Combine(runDir, RunStore.FileName);
        if (File.Exists(db) || Path.Exists(db))
        {
            // Read-only: a file that is not this program's run (another program's SQLite, an empty file) is refused unchanged.
            RunStore.Recognise(db);
            if (!resume)
                throw new RunStoreException($"{db} already holds a search run; pass {UserError.P("resume")} to continue it, or choose a new {UserError.P("run")} directory");
        }
        RunStore.AcquireLock(runDir).Dispose();
    }

    /// <summary>The search's identity: the inputs by content (hashed once, here) and the fitness settings.</summary>
    public static RunIdentity Identity(SearchSettings s) => PruningFitness.Identity(s.Session, s.Target, s.ScreenWindows, s.Stages);

    /// <summary>A stage list: increasing, every stage at least 2 windows, the last one the screen's windows.</summary>
    public static void CheckStages(IReadOnlyList<int> stages, int screenWindows)
    {
        if (stages.Count == 0) return;
        if (stages.Count == 1) throw new PrunerZeroException($"{UserError.P("stages")} needs at least two stages (e.g. 16,{screenWindows}), got {stages[0]}");
        try { ScreenPlan.CheckStages(stages, screenWindows); }
        catch (ArgumentException e) { throw new PrunerZeroException($"{UserError.P("stages")} {string.Join(",", stages)}: {e.Message} ({UserError.P("screen_windows")})"); }
    }

    /// <summary>
    /// Runs the search: <paramref name="identity"/> (from <see cref="Identity"/>) keys the store's inputs, the
    /// cluster protocol and the G cache. <paramref name="ct"/> stops it after the current evaluation; the run then
    /// resumes from its store.
    /// </summary>
    public static SearchOutcome Run(SearchSettings s, RunIdentity identity, TextWriter log, IProgress<string> progress, CancellationToken ct)
    {
        var transfers = TransferWorkflow.CheckAll(s, identity, log, progress);
        using var resources = new DisposalStack();
        IFitness fitness;
        if (s.Cluster is not null)
            fitness = resources.Add(ClusterWiring.ConnectSearch(s, identity, log, ct));
        else
        {
            var backend = resources.Add(Setup.Backend(s.Session.Device));
            var session = resources.Add(new PruneSession(s.Session with { EvalWindows = null }, log, progress, identity));
            fitness = new PruningFitness(session, s.Target, backend, s.ScreenWindows, s.Batch, s.Stages);
        }
        log.WriteLine($"search: population {s.Population}, iterations {s.Iterations}, height {s.MinDepth}..{s.MaxDepth}, top-k {s.TopK}, mutation {s.Mutation}, seed {s.Seed}, batch {s.Batch}");
        log.WriteLine($"fitness: {fitness.Protocol}");
        var options = new SearchOptions
        {
            RunDir = s.RunDir, Population = s.Population, Iterations = s.Iterations, MinHeight = s.MinDepth, MaxHeight = s.MaxDepth,
            TopK = s.TopK, Mutation = s.Mutation, Seed = s.Seed, Resume = s.Resume, ReportTop = s.ReportTop,
            Protocol = $"target={s.Target}", Inputs = identity.StoreInputs,
            Upgrades = new Dictionary<string, Func<string, string>> { ["fitness_protocol"] = PruningFitness.UpgradeStoredProtocol },
        };
        var lines = new LogProgress(log);
        try
        {
            var report = Run(options, transfers, fitness, lines, ct);
            return new SearchOutcome(report, fitness.Protocol, (fitness as ClusterFitness)?.Rates());
        }
        catch (OperationCanceledException)
        {
            throw new PrunerZeroException($"search stopped; resume with {UserError.P("resume")} {UserError.P("run")} {s.RunDir}");
        }
    }

    /// <summary>
    /// The search on its store, then each transfer on the same store (the run folder stays locked), then the report
    /// files; the report comes back with its transfers and files.
    /// </summary>
    public static SearchReport Run(SearchOptions options, IReadOnlyList<TransferTarget> transfers, IFitness fitness,
                                   IProgress<string>? progress, CancellationToken ct)
    {
        using var store = SearchRun.Open(options, fitness, progress);
        var report = SearchRun.Run(options, fitness, store, progress, ct);
        report = report with { Transfers = [.. transfers.Select(t => TransferRun.Run(t, report.Top, report.Baselines, store, progress, ct))] };
        var files = ReportWriter.Write(options, report, Path.Combine(options.RunDir, RunStore.FileName));
        if (report.Best is { } best)
            progress?.Report($"best {best.Expr}  screen {best.Screen.Perplexity:0.###}  full {best.Full?.Perplexity:0.###}");
        return report with { Files = files };
    }

    /// <summary>The search's own lines are kept (one per iteration); the session's per-window lines are not repeated here.</summary>
    sealed class LogProgress(TextWriter log) : IProgress<string>
    {
        public void Report(string value) => log.WriteLine(value);
    }
}
