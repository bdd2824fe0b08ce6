// `allocate`: an evolutionary search of the per-block sparsity for one metric and target (AllocationSearch), the
// candidates pruned one-shot (dense X and G, as `search` screens) and scored by their mean next-token NLL on the
// calibration windows (never the evaluation text). The run folder holds a run store (resume after any kill) and the
// report: allocation.json (the profile `--allocation FILE` reads), history.csv, report.md and allocation.png (the
// profile beside OWL's and uniform).
using System.Globalization;
using System.Text;
using PrunerZero.Kernels;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Pruning;
using PrunerZero.Search;

namespace PrunerZero.Workflows;

/// <summary>Everything `allocate` runs with (the CLI builds it from its options).</summary>
public sealed record AllocateSettings
{
    /// <summary>Model, calibration (also the loss's windows), G cache and device; the evaluation data is not read.</summary>
    public required SessionOptions Session { get; init; }
    public required Expr Metric { get; init; }
    public required PruneTarget Target { get; init; }
    public required string RunDir { get; init; }
    public bool Resume { get; init; }
    public required AllocationSearchOptions Search { get; init; }
    /// <summary>The OWL allocation the report compares with.</summary>
    public AllocationSpec Owl { get; init; } = new("owl");
    /// <summary>Start from OWL's profile on the grid (else from uniform).</summary>
    public bool StartFromOwl { get; init; } = true;
}

public sealed record AllocateOutcome(AllocationSearchReport Report, SparsityAllocation Best, IReadOnlyList<(string Name, double Loss)> Compared,
    IReadOnlyList<(string Kind, string Path)> Files);

/// <summary>The loss of a per-block allocation: one-shot pruning with the metric, then mean NLL on the first calibration windows.</summary>
public sealed class AllocationFitness(PruneSession session, Expr metric, PruneTarget target, IMetricBackend backend) : IAllocationFitness
{
    public string Protocol =>
        $"{session.Protocol(target)} metric={metric} pruning=one-shot(dense X, G) loss=mean next-token NLL on the first calibration windows";

    public int Blocks => session.Model.Blocks.Count;

    public double Loss(IReadOnlyList<double> blockSparsity, int windows, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        return Loss(SparsityAllocation.PerBlock("candidate", target.Sparsity, blockSparsity), windows);
    }

    /// <summary>The loss of any allocation (null: uniform); +∞ when the metric is invalid under it.</summary>
    public double Loss(SparsityAllocation? allocation, int windows)
    {
        var report = session.PruneOneShot(metric, target, backend, allocation: allocation ?? SparsityAllocation.Uniform(Blocks, target.Sparsity));
        if (!report.Valid) return double.PositiveInfinity;
        return Perplexity.MeanNll(session.Model, session.Calibration.Windows.Take(windows));
    }
}

public static class AllocateWorkflow
{
    public static readonly IReadOnlyList<string> RunFiles =
        [RunStore.FileName, RunStore.FileName + "-wal", RunStore.FileName + "-shm", RunStore.LockFileName,
         "allocation.json", "history.csv", "report.md", "allocation.png"];

    /// <summary>Every setting, checked before anything is loaded.</summary>
    public static void Check(AllocateSettings s)
    {
        if (s.Target.IsNM) throw new PrunerZeroException($"allocate searches unstructured sparsity per block; {UserError.P("nm")} is the same in every layer");
        if (!s.Session.Allocation.IsUniform) throw new PrunerZeroException($"{UserError.P("allocation")} is what allocate searches; it starts from uniform");
        int most = s.Search.Stages.Count == 0 ? 0 : s.Search.Stages.Max(st => st.Windows);
        if (most > s.Session.NSamples)
            throw new PrunerZeroException($"{UserError.P("stages")} use up to {most} calibration windows, but {UserError.P("nsamples")} is {s.Session.NSamples}");
        try { s.Search.Validate(blocks: 2); }
        catch (ArgumentException e) { throw new PrunerZeroException($"{UserError.P("stages")}: {e.Message}"); }
        SearchWorkflow.CheckRunFolder(s.RunDir, s.Resume);
    }

    public static AllocateOutcome Run(AllocateSettings s, TextWriter log, IProgress<string> progress, CancellationToken ct)
    {
        Check(s);
        var identity = RunIdentity.Of(s.Session.ModelDir, s.Session.CalibPath, s.Session.CalibPath,
        [
            ("nsamples", s.Session.NSamples.ToString(CultureInfo.InvariantCulture)),
            ("seqlen", s.Session.Seqlen?.ToString(CultureInfo.InvariantCulture) ?? "model"),
            ("calib_sampling", s.Session.Sampling.ToString().ToLowerInvariant()),
            ("calib_seed", s.Session.Seed.ToString(CultureInfo.InvariantCulture)),
            ("metric", s.Metric.ToString()),
        ]);
        using var backend = Setup.Backend(s.Session.Device);
        using var session = new PruneSession(s.Session, log, progress, identity);
        var fitness = new AllocationFitness(session, s.Metric, s.Target, backend);
        var owl = session.Owl(s.Target.Sparsity, s.Owl.M, s.Owl.Lambda);
        var search = s.StartFromOwl ? s.Search with { Start = [.. Enumerable.Range(0, owl.Blocks).Select(owl.BlockSparsity)] } : s.Search;
        var parameters = new Dictionary<string, string> { ["algorithm"] = "evopress-levels/1", ["fitness_protocol"] = fitness.Protocol };
        foreach (var (k, v) in identity.Settings) parameters["setting." + k] = v;
        foreach (var (k, v) in identity.StoreInputs) parameters["input." + k] = v;
        foreach (var (k, v) in search.Identity()) parameters[k] = v;
        Directory.CreateDirectory(s.RunDir);
        AllocationSearchReport report;
        using (var store = RunStore.Open(Path.Combine(s.RunDir, RunStore.FileName), parameters, s.Resume, new HashSet<string> { "generations" }))
            report = AllocationSearch.Run(fitness, search, store, progress, ct);
        if (report.History.Count == 0) throw new PrunerZeroException("allocate was stopped before its first generation ended; nothing to report");

        var best = SparsityAllocation.PerBlock($"allocate({s.Metric}, seed {s.Search.Seed})", s.Target.Sparsity, report.BestSparsity);
        int windows = s.Search.Stages[^1].Windows;
        var compared = new List<(string, double)>
        {
            ("uniform", fitness.Loss(null, windows)), (owl.Method, fitness.Loss(owl, windows)), ("allocate", report.BestLoss),
        };
        session.RestoreDense();
        var files = Write(s with { Search = search }, report, best, owl, compared, windows, session.ModelSha256);
        return new AllocateOutcome(report, best, compared, files);
    }

    static List<(string, string)> Write(AllocateSettings s, AllocationSearchReport r, SparsityAllocation best, SparsityAllocation owl,
        List<(string Name, double Loss)> compared, int windows, string modelSha256)
    {
        string F(string name) => Path.Combine(s.RunDir, name);
        var inv = CultureInfo.InvariantCulture;
        File.WriteAllText(F("allocation.json"), best.ToJson(modelSha256) + "\n");
        var csv = new StringBuilder("generation,loss,evaluations,windows_spent,sparsities\n");
        foreach (var g in r.History)
            csv.Append(inv, $"{g.Generation},{g.Loss:R},{g.Evaluations},{g.WindowsSpent},{string.Join(" ", AllocationSearch.Sparsities(g.Levels, s.Search).Select(v => v.ToString("0.####", inv)))}\n");
        File.WriteAllText(F("history.csv"), csv.ToString());

        var md = new StringBuilder();
        md.Append(inv, $"# Sparsity allocation: {s.Metric} at {s.Target}\n\n{r.Protocol}\n\n");
        md.Append(inv, $"{r.History.Count} generations ({r.ResumedGenerations} resumed), {r.Evaluations} evaluations, {r.WindowsSpent} calibration windows evaluated; stages {string.Join(", ", s.Search.Stages.Select(st => $"{st.Windows} windows → {st.Survivors}"))}; step {s.Search.Step}; seed {s.Search.Seed}.\n\n");
        md.Append(inv, $"| allocation | mean NLL on {windows} calibration windows | perplexity |\n|---|---|---|\n");
        foreach (var (name, loss) in compared) md.Append(inv, $"| {name} | {loss:0.00000} | {Math.Exp(loss):0.000} |\n");
        md.Append("\n| block | uniform | OWL | allocate |\n|---|---|---|---|\n");
        for (int b = 0; b < best.Blocks; b++)
            md.Append(inv, $"| {b} | {s.Target.Sparsity:0.####} | {owl.BlockSparsity(b):0.####} | {best.BlockSparsity(b):0.####} |\n");
        md.Append("\nUse the profile with `--allocation allocation.json` on prune, score, search, worker or bench (same target and block count; another model gets a note).\n");
        File.WriteAllText(F("report.md"), md.ToString());

        var plt = new ScottPlot.Plot();
        double[] xs = [.. Enumerable.Range(0, best.Blocks).Select(b => (double)b)];
        foreach (var (name, a) in new[] { ("uniform", (SparsityAllocation?)null), ("OWL", owl), ("allocate", best) })
        {
            var line = plt.Add.Scatter(xs, [.. xs.Select(b => a?.BlockSparsity((int)b) ?? s.Target.Sparsity)]);
            line.LegendText = name;
        }
        plt.Title($"Sparsity per block: {s.Metric} at {s.Target}");
        plt.XLabel("block");
        plt.YLabel("sparsity");
        plt.ShowLegend();
        plt.SavePng(F("allocation.png"), 900, 540);
        return [("profile", F("allocation.json")), ("history", F("history.csv")), ("report", F("report.md")), ("plot", F("allocation.png"))];
    }
}
