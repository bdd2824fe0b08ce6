// The report files a search leaves in its run folder (ReportWriter, rendered by the search workflow after
// SearchRun), on the synthetic fitness. Moved from PrunerZero.Search.Tests with their assertions when the GP
// library stopped writing anything but its store.
using PrunerZero.Kernels;
using PrunerZero.Search;

namespace PrunerZero.Workflows.Tests;

public sealed class SearchReportFilesTests : TorchGuarded
{
    readonly string _root = Runtime.Tests.TestCheckpoints.TempDir("report");

    static readonly Expr Target = MetricParser.Parse("mul(sqr(W), mms(G))");

    SearchOptions Opts(string name, long seed = 7, int iterations = 40) => new()
    {
        RunDir = Path.Combine(_root, name), Population = 12, Iterations = iterations, TopK = 4, Seed = seed,
        Protocol = "sparsity=0.5", ReportTop = 3,
    };

    static SearchReport Run(SearchOptions o, IFitness fitness, IProgress<string>? progress = null) =>
        SearchWorkflow.Run(o, [], fitness, progress, default);

    /// <summary>Rejects every metric (from SearchRunTests: a run with no valid member).</summary>
    sealed class AllInvalid : IFitness
    {
        public string Protocol => "picky";
        public int MaxParallelism => 1;
        public FitnessResult Screen(Expr m, CancellationToken ct) => FitnessResult.Invalid("uses X");
        public FitnessResult Full(Expr m, CancellationToken ct) => Screen(m, ct);
    }

    /// <summary>The synthetic fitness with its screen-mask fingerprint exposed (from MaskFingerprintTests).</summary>
    sealed class Fingerprinted(SyntheticFitness inner, int parallel = 1) : IFitness, IMaskFingerprint
    {
        public string Protocol => inner.Protocol;
        public int MaxParallelism => parallel;
        public string FingerprintMethod => "sha256 of the synthetic screen masks";
        public string? MaskFingerprint(Expr metric, CancellationToken ct) => inner.ScreenMaskFingerprint(metric);
        public FitnessResult Screen(Expr m, CancellationToken ct) => inner.Screen(m, ct);
        public FitnessResult Full(Expr m, CancellationToken ct) => inner.Full(m, ct);
    }

    [Fact]
    public void Report_files_are_written_and_parse_back()
    {
        var o = Opts("rep", iterations: 10);
        var r = Run(o, new SyntheticFitness(Target), new SyncProgress(_ => { }));
        var png = File.ReadAllBytes(r.Files["plot"]);
        Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, png[..8]);
        var best = r.Best!.Expr;
        Assert.Equal(best, ExprJson.FromJson(System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(r.Files["best-json"]))));
        Assert.Equal(best, Metrics.Resolve(File.ReadAllText(r.Files["best-expr"]).Trim()));
        Assert.Equal(o.Iterations + 2, File.ReadAllLines(r.Files["history"]).Length); // header + iterations 0..N
        var report = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(r.Files["report-json"]))!;
        Assert.Equal(3, report["baselines"]!.AsArray().Count);
        Assert.Equal(3, report["top"]!.AsArray().Count);
        Assert.All(r.Top, c => Assert.NotNull(c.Full));
    }

    [Fact]
    public void A_run_without_a_valid_member_still_plots()
    {
        var all = Run(Opts("allinv", iterations: 10) with { Population = 4 }, new AllInvalid());
        Assert.Empty(all.Population);
        Assert.Null(all.Best);
        Assert.True(File.Exists(all.Files["plot"]));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void Same_mask_counts_reach_report_md_and_history_csv(int parallel)
    {
        var r = Run(Opts("fp", iterations: 60) with { ReportTop = 5 }, new Fingerprinted(new SyntheticFitness(Target), parallel));
        Assert.True(r.SameMask > 0, "the synthetic search makes same-mask candidates (monotone transforms)");
        var md = File.ReadAllText(r.Files["report-md"]);
        Assert.Contains($"Same mask: {r.SameMask} of {r.Evaluations} candidates", md);
        Assert.EndsWith($",{r.SameMask},{r.Cut}", File.ReadAllLines(r.Files["history"])[^1]);   // same_mask, cut
        Assert.Contains($"Early stops: {r.Cut} of {r.Evaluations} candidates", md);
    }
}
