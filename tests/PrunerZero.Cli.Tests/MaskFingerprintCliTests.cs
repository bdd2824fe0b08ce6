// Mask fingerprints on a real (tiny) model: PruningFitness hashes the masks the screen would apply, and
// `search` counts same-mask candidates, stores them with their source and reports distinct leaders.
using Microsoft.Data.Sqlite;
using PrunerZero.Kernels;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Pruning;
using PrunerZero.Runtime.Tests;
using PrunerZero.Search;

namespace PrunerZero.Cli.Tests;

public class MaskFingerprintCliTests : TorchGuarded
{
    [Fact]
    public void Fingerprints_follow_the_masks_and_equal_fingerprints_mean_equal_screen_fitness()
    {
        var s = PipelineTests.Setup();
        var options = new SessionOptions
        {
            ModelDir = s.Model, CalibPath = s.Calib, EvalPath = s.Wiki, CacheDir = s.Cache, NSamples = 4, Seqlen = 32,
            Sampling = CalibSampling.Stride,
        };
        using var backend = new CpuBackend();
        using var session = new PruneSession(options, TextWriter.Null);
        var fit = new PruningFitness(session, PruneTarget.Unstructured(0.5), backend, screenWindows: 2);
        string? Fp(string e) => fit.MaskFingerprint(Metrics.Resolve(e), default);
        double Ppl(string e) => fit.Screen(Metrics.Resolve(e), default).Perplexity;

        string? magnitude = Fp("abs(W)");
        Assert.NotNull(magnitude);
        Assert.Equal(64, magnitude!.Length);                        // SHA-256, hex
        Assert.Equal(magnitude, Fp("sqr(W)"));                      // a monotone transform: same masks
        Assert.Equal(Fp("mul(abs(W), X)"), Fp("mul(sqr(W), sqr(X))"));
        Assert.NotEqual(magnitude, Fp("mul(abs(W), X)"));           // wanda prunes other weights
        Assert.NotEqual(magnitude, Fp("mul(abs(W), G)"));
        Assert.Equal(Ppl("abs(W)"), Ppl("sqr(W)"));
        // Taken after a screen has pruned the model: still the dense model's masks.
        Assert.Equal(magnitude, Fp("abs(W)"));
        Assert.Null(Fp("sub(W, W)"));                               // no ranking: invalid, no fingerprint
        // 2:4 is another target, so other masks.
        var nm = new PruningFitness(session, PruneTarget.ParseNM("2:4"), backend, screenWindows: 2);
        Assert.NotEqual(magnitude, nm.MaskFingerprint(Metrics.Resolve("abs(W)"), default));
    }

    /// <summary>Counts the scoring calls of the CPU back end.</summary>
    sealed class CountingBackend : IMetricBackend
    {
        readonly CpuBackend _cpu = new();
        public int Scores;
        public string Name => "counting cpu";
        public void Score(Expr e, ReadOnlySpan<float> weight, ReadOnlySpan<float> g, ReadOnlySpan<float> x, int rows, int cols, Span<float> scores)
        {
            Scores++;
            _cpu.Score(e, weight, g, x, rows, cols, scores);
        }
        public void MaskUnstructured(ReadOnlySpan<float> scores, int rows, int cols, double sparsity, Span<byte> prune) => _cpu.MaskUnstructured(scores, rows, cols, sparsity, prune);
        public void MaskNM(ReadOnlySpan<float> scores, int rows, int cols, int n, int m, Span<byte> prune) => _cpu.MaskNM(scores, rows, cols, n, m, prune);
        public void Dispose() => _cpu.Dispose();
    }

    [Fact]
    public void A_candidate_is_scored_once_and_its_fingerprint_is_that_of_the_weights_it_zeroed()
    {
        var s = PipelineTests.Setup();
        var options = new SessionOptions
        {
            ModelDir = s.Model, CalibPath = s.Calib, EvalPath = s.Wiki, CacheDir = s.Cache, NSamples = 4, Seqlen = 32,
            Sampling = CalibSampling.Stride,
        };
        using var backend = new CountingBackend();
        using var session = new PruneSession(options, TextWriter.Null);
        var fit = new PruningFitness(session, PruneTarget.Unstructured(0.5), backend, screenWindows: 2);
        int linears = session.Model.Blocks.Count * LinearKinds.All.Length;
        var wanda = Metrics.Resolve("mul(abs(W), X)");

        string? fp = fit.MaskFingerprint(wanda, default);
        Assert.Equal(linears, backend.Scores);
        double ppl = fit.Screen(wanda, default).Perplexity;
        Assert.Equal(linears, backend.Scores);                       // the screen used the masks of the fingerprint

        // Independently: the fingerprint of the pruned model's zeros (the random dense weights have none).
        using (var zeros = new MaskFingerprint())
        {
            for (int i = 0; i < session.Model.Blocks.Count; i++)
                foreach (var k in LinearKinds.All)
                {
                    using var scope = TorchSharp.torch.NewDisposeScope();
                    var w = session.Model.Blocks[i][k];
                    var bits = w.EqualTo(0).to(TorchSharp.torch.ScalarType.Byte).contiguous().data<byte>().ToArray();
                    zeros.Add(bits, (int)w.shape[0], (int)w.shape[1]);
                }
            Assert.Equal(zeros.Finish(), fp);
        }

        fit.Screen(Metrics.Magnitude, default);                      // another candidate prunes the model anew
        Assert.Equal(2 * linears, backend.Scores);
        Assert.Equal(ppl, fit.Screen(wanda, default).Perplexity);    // so wanda is scored again, to the same result
        Assert.Equal(3 * linears, backend.Scores);
    }

    [Fact]
    public void Search_reports_same_mask_duplicates_with_distinct_leaders_and_resumes_equal()
    {
        var s = PipelineTests.Setup();
        string run = TestCheckpoints.TempDir("search-fp");
        string[] args = ["search", .. PipelineTests.Common(s), "--run", run, "--population", "8", "--iterations", "24",
                         "--screen-windows", "2", "--report-top", "4", "--seed", "1"];
        var (exit, stdout, err) = CliRunner.Run(args);
        Assert.True(exit == 0, err);
        var rows = new List<(string Canonical, string? Fp, long? SameAs, double? Full)>();
        using (var db = new SqliteConnection($"Data Source={Path.Combine(run, RunStore.FileName)};Pooling=False"))
        {
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = "SELECT canonical, mask_fingerprint, same_mask_as, full_ppl FROM evaluations ORDER BY id";
            using var r = cmd.ExecuteReader();
            while (r.Read()) rows.Add((r.GetString(0), r.IsDBNull(1) ? null : r.GetString(1), r.IsDBNull(2) ? null : r.GetInt64(2), r.IsDBNull(3) ? null : r.GetDouble(3)));
        }
        int same = rows.Count(x => x.SameAs is not null);
        Assert.True(same > 0, "a 24-iteration search on the tiny model makes same-mask candidates");
        Assert.Contains($"same mask {same}", stdout);
        Assert.Contains($"Same mask: {same} of {rows.Count} candidates", File.ReadAllText(Path.Combine(run, "report.md")));
        // Leaders (the rows re-checked on the full split) are distinct masks; copies are never re-checked.
        var leaders = rows.Where(x => x.Full is not null).ToList();
        Assert.Equal(4, leaders.Count);
        Assert.Equal(4, leaders.Select(x => x.Fp).Distinct().Count());
        Assert.All(leaders, x => Assert.Null(x.SameAs));

        var (exit2, stdout2, err2) = CliRunner.Run([.. args, "--resume"]);
        Assert.True(exit2 == 0, err2);
        Assert.Contains("(this process 0)", stdout2);
        Assert.Contains($"same mask {same}", stdout2);
        Assert.Equal(stdout.Split('\n').Where(l => l.StartsWith("best:")), stdout2.Split('\n').Where(l => l.StartsWith("best:")));
    }
}
