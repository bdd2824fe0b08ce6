// `score --screen-windows`: every metric under the search's screen (one-shot, N windows) and the full protocol,
// and the rank agreement per N. Checked against separate evaluations: the search's own PruningFitness for the
// screen, a plain `score` run for the full numbers, RankCorrelation on the printed numbers for the table.
using System.Text.Json;
using PrunerZero.Kernels;
using PrunerZero.Runtime.Pruning;
using PrunerZero.Runtime.Tests;
using PrunerZero.Search;
using PrunerZero.Workflows;

namespace PrunerZero.Cli.Tests;

public class ScreenFidelityCliTests : TorchGuarded
{
    static readonly string[] Library =
        ["magnitude", "wanda", "pruner-zero", "mul(W, G)", "sqr(G)", "add(mms(G), zsn(W))", "mul(W, X)", "sparsegpt", "mul(W,", "sub(W, W)"];

    [Fact]
    public void Screen_and_full_numbers_equal_separate_evaluations_and_the_table_ranks_them()
    {
        var s = PipelineTests.Setup();
        string metrics = Path.Combine(TestCheckpoints.TempDir("metrics"), "lib.txt");
        File.WriteAllLines(metrics, Library);
        string csv = metrics + ".csv";
        var (exit, stdout, err) = CliRunner.Run(["score", .. PipelineTests.Common(s), "--metrics", metrics, "--screen-windows", "2,5", "--top-k", "3", "--json", "--csv", csv]);
        Assert.True(exit == 0, err);
        using var doc = JsonDocument.Parse(stdout);
        var rows = doc.RootElement.GetProperty("rows").EnumerateArray().ToList();
        Assert.Equal(Library.Length, rows.Count);

        // Full numbers: the same as `score` without --screen-windows.
        var (exitPlain, stdoutPlain, errPlain) = CliRunner.Run(["score", .. PipelineTests.Common(s), "--metrics", metrics, "--json"]);
        Assert.True(exitPlain == 0, errPlain);
        using var plain = JsonDocument.Parse(stdoutPlain);
        var plainPpl = plain.RootElement.GetProperty("rows").EnumerateArray().Where(r => r.GetProperty("valid").GetBoolean())
            .ToDictionary(r => r.GetProperty("metric").GetString()!, r => r.GetProperty("perplexity").GetDouble());
        var valid = rows.Where(r => r.GetProperty("valid").GetBoolean()).ToList();
        Assert.Equal(8, valid.Count);   // the 7 metrics and sparsegpt; the parse error and sub(W, W) are not
        foreach (var r in valid)
            Assert.Equal(plainPpl[r.GetProperty("metric").GetString()!], r.GetProperty("perplexity").GetDouble(), 9);

        // Screen numbers: the search's fitness on a session of its own.
        var options = new SessionOptions
        {
            ModelDir = s.Model, CalibPath = s.Calib, EvalPath = s.Wiki, CacheDir = s.Cache, NSamples = 4, Seqlen = 32, Sampling = CalibSampling.Stride,
        };
        using var backend = new CpuBackend();
        using var session = new PruneSession(options, TextWriter.Null);
        var fit2 = new PruningFitness(session, PruneTarget.Unstructured(0.5), backend, screenWindows: 2);
        var fit5 = new PruningFitness(session, PruneTarget.Unstructured(0.5), backend, screenWindows: 5);
        int screened = 0;
        foreach (var r in valid.Where(r => r.GetProperty("metric").GetString() != "sparsegpt"))
        {
            var expr = Metrics.Resolve(r.GetProperty("line").GetString()!);
            var sc = r.GetProperty("screen").EnumerateArray().ToList();
            Assert.Equal([2, 5], sc.Select(x => x.GetProperty("windows").GetInt32()));
            Assert.Equal(fit2.Screen(expr, default).Perplexity, sc[0].GetProperty("perplexity").GetDouble(), 9);
            Assert.Equal(fit5.Screen(expr, default).Perplexity, sc[1].GetProperty("perplexity").GetDouble(), 9);
            Assert.NotEqual(sc[0].GetProperty("perplexity").GetDouble(), sc[1].GetProperty("perplexity").GetDouble());
            screened++;
        }
        Assert.Equal(7, screened);
        var sparsegpt = rows.Single(r => r.GetProperty("metric").GetString() == "sparsegpt");
        Assert.All(sparsegpt.GetProperty("screen").EnumerateArray(), x => Assert.False(x.GetProperty("valid").GetBoolean()));

        // The table: ranks of exactly these numbers over the 7 lines valid under both.
        var both = valid.Where(r => r.GetProperty("metric").GetString() != "sparsegpt").ToList();
        double[] full = both.Select(r => r.GetProperty("perplexity").GetDouble()).ToArray();
        var fidelity = doc.RootElement.GetProperty("fidelity").EnumerateArray().ToList();
        Assert.Equal(2, fidelity.Count);
        for (int i = 0; i < 2; i++)
        {
            double[] screen = both.Select(r => r.GetProperty("screen")[i].GetProperty("perplexity").GetDouble()).ToArray();
            var f = fidelity[i];
            Assert.Equal(i == 0 ? 2 : 5, f.GetProperty("windows").GetInt32());
            Assert.Equal(7, f.GetProperty("candidates").GetInt32());
            Assert.Equal(RankCorrelation.Spearman(screen, full)!.Value, f.GetProperty("spearman").GetDouble(), 12);
            Assert.Equal(RankCorrelation.KendallTauB(screen, full)!.Value, f.GetProperty("kendall_tau_b").GetDouble(), 12);
            Assert.Equal(3, f.GetProperty("top_k").GetInt32());
            Assert.Equal(RankCorrelation.TopKOverlap(screen, full, 3), f.GetProperty("top_k_overlap").GetInt32());
            Assert.True(f.GetProperty("screen_seconds_per_candidate").GetDouble() > 0);
        }
        Assert.StartsWith("screen=one-shot(dense X, G) on 2,5 windows", doc.RootElement.GetProperty("screen_protocol").GetString());

        // CSV: one line per library line, two columns per window count.
        var csvLines = File.ReadAllLines(csv);
        Assert.Equal(Library.Length + 1, csvLines.Length);
        Assert.EndsWith(",screen_2,screen_2_seconds,screen_5,screen_5_seconds", csvLines[0]);

        // The text table prints the same Spearman.
        var (exitText, stdoutText, errText) = CliRunner.Run(["score", .. PipelineTests.Common(s), "--metrics", metrics, "--screen-windows", "2"]);
        Assert.True(exitText == 0, errText);
        Assert.Contains("screen fidelity:", stdoutText);
        string expected = fidelity[0].GetProperty("spearman").GetDouble().ToString("0.000", System.Globalization.CultureInfo.InvariantCulture);
        Assert.Contains(stdoutText.Split('\n'), l => l.TrimStart().StartsWith("2 ") && l.Contains($" {expected} "));
    }

    [Fact]
    public void Bad_screen_windows_are_refused_in_one_line()
    {
        var s = PipelineTests.Setup();
        string metrics = Path.Combine(TestCheckpoints.TempDir("metrics"), "lib.txt");
        File.WriteAllLines(metrics, ["magnitude"]);
        string[] common = ["score", .. PipelineTests.Common(s), "--metrics", metrics];
        CliRunner.UserError("--screen-windows must be positive", [.. common, "--screen-windows", "4,0"]);
        CliRunner.UserError("repeats a count", [.. common, "--screen-windows", "4,4"]);
        CliRunner.UserError("no weight update", [.. common, "--screen-windows", "4", "--update", "obs"]);
        CliRunner.UserError("--top-k must be at least 1", [.. common, "--screen-windows", "4", "--top-k", "0"]);
        CliRunner.UserError("exceeds the", [.. common, "--screen-windows", "100000"]);
    }
}
