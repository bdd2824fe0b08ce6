using System.Globalization;
using System.Text.Json;
using PrunerZero.Runtime.Tests;

namespace PrunerZero.Cli.Tests;

/// <summary>`search --transfer-model`: the transfer table, its CSV, its numbers against independent runs, resume and refusal.</summary>
public class TransferTests : TorchGuarded
{
    static string[] SearchArgs((string Model, string Wiki, string Calib, string Cache) s, string run) =>
        ["search", .. PipelineTests.Common(s), "--run", run, "--population", "4", "--iterations", "2", "--screen-windows", "2", "--report-top", "2", "--seed", "5"];

    sealed record Row(string Name, string Metric, double SearchPpl, double TransferPpl, int? SearchRank, int? TransferRank);

    static List<Row> ReadCsv(string path)
    {
        var lines = File.ReadAllLines(path);
        Assert.Equal("transfer_model,name,metric,search_ppl,transfer_ppl,search_rank,transfer_rank,transfer_valid,transfer_reason,transfer_seconds", lines[0]);
        static int? R(string v) => v.Length == 0 ? null : int.Parse(v, CultureInfo.InvariantCulture);
        return lines.Skip(1).Select(l =>
        {
            // Metrics have commas: the metric field is quoted; the transfer model (a temp folder here) and the name never are.
            l = l[(l.IndexOf(',') + 1)..];
            var name = l[..l.IndexOf(',')];
            var rest = l[(name.Length + 1)..];
            string metric;
            if (rest.StartsWith('"')) { int end = rest.IndexOf('"', 1); metric = rest[1..end]; rest = rest[(end + 2)..]; }
            else { metric = rest[..rest.IndexOf(',')]; rest = rest[(metric.Length + 1)..]; }
            var f = rest.Split(',');
            return new Row(name, metric, double.Parse(f[0], CultureInfo.InvariantCulture), double.Parse(f[1], CultureInfo.InvariantCulture), R(f[2]), R(f[3]));
        }).ToList();
    }

    static void RanksFollowPerplexities(List<Row> rows, Func<Row, double> ppl, Func<Row, int?> rank)
    {
        foreach (var r in rows) Assert.Equal(1 + rows.Count(o => ppl(o) < ppl(r)), rank(r));
    }

    static string TransferSeconds(string csvLine) => csvLine[(csvLine.LastIndexOf(',') + 1)..];

    [Fact]
    public void TransferTableOnASecondModelMatchesAnIndependentScoreAndResumeDoesNotRedoIt()
    {
        var s = PipelineTests.Setup();
        // Another seed and width, one block: with a single block the sequential protocol of `score` sees the same
        // (dense) X as the search's one-shot protocol, so `score` is an independent check of every row.
        var config = TestCheckpoints.Config();
        config["num_hidden_layers"] = 1;
        config["intermediate_size"] = 64;
        string other = TestCheckpoints.Write(config, seed: 29, scale: 0.3f);
        string run = TestCheckpoints.TempDir("transfer");
        string[] args = [.. SearchArgs(s, run), "--transfer-model", other];
        var (exit, stdout, err) = CliRunner.Run(args);
        Assert.True(exit == 0, err);
        Assert.Contains($"transfer to {other}", stdout);
        Assert.Contains("transfer: loading", err);
        Assert.Contains("transfer 1/", err);

        string csvPath = Path.Combine(run, "transfer.csv");
        var rows = ReadCsv(csvPath);
        var csvLines = File.ReadAllLines(csvPath);
        using var report = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "report.json")));
        var leaders = report.RootElement.GetProperty("top").EnumerateArray().Where(c => c.GetProperty("full").GetProperty("valid").GetBoolean()).ToList();
        var baselines = report.RootElement.GetProperty("baselines").EnumerateArray().ToList();
        Assert.NotEmpty(leaders);
        Assert.Equal(Enumerable.Range(1, leaders.Count).Select(i => $"leader {i}").Concat(["magnitude", "wanda", "pruner-zero"]), rows.Select(r => r.Name));
        for (int i = 0; i < leaders.Count; i++)
        {
            Assert.Equal(leaders[i].GetProperty("expr").GetString(), rows[i].Metric);
            Assert.Equal(leaders[i].GetProperty("full").GetProperty("perplexity").GetDouble(), rows[i].SearchPpl, 1e-9 * rows[i].SearchPpl);
        }
        foreach (var b in baselines)
        {
            var row = rows.Single(r => r.Name == b.GetProperty("name").GetString());
            Assert.Equal(b.GetProperty("expr").GetString(), row.Metric);
            Assert.Equal(b.GetProperty("full").GetProperty("perplexity").GetDouble(), row.SearchPpl, 1e-9 * row.SearchPpl);
        }
        RanksFollowPerplexities(rows, r => r.SearchPpl, r => r.SearchRank);
        RanksFollowPerplexities(rows, r => r.TransferPpl, r => r.TransferRank);
        Assert.All(rows, r => Assert.NotEqual(r.SearchPpl, r.TransferPpl, 6));   // two different models

        // Independent: `score` of the same metrics on the transfer model, the whole test split.
        string metrics = Path.Combine(TestCheckpoints.TempDir("transfer-score"), "metrics.txt");
        File.WriteAllLines(metrics, rows.Select(r => r.Metric));
        var (sexit, sout, serr) = CliRunner.Run(["score", .. PipelineTests.Common(s with { Model = other }), "--metrics", metrics, "--json"]);
        Assert.True(sexit == 0, serr);
        using (var sc = JsonDocument.Parse(sout))
        {
            var scored = sc.RootElement.GetProperty("rows").EnumerateArray()
                .ToDictionary(r => r.GetProperty("line").GetString()!, r => r.GetProperty("perplexity").GetDouble());
            foreach (var r in rows) Assert.Equal(scored[r.Metric], r.TransferPpl, 1e-6 * r.TransferPpl);
        }

        string md = File.ReadAllText(Path.Combine(run, "report.md"));
        Assert.Contains("## Transfer", md);
        Assert.Contains("| name | metric | search ppl | transfer ppl | search rank | transfer rank |", md);
        Assert.Contains($"`{other}`", md);
        foreach (var r in rows)
            Assert.Contains($"| {r.Name} | `{r.Metric}` | {r.SearchPpl.ToString("0.###", CultureInfo.InvariantCulture)} | {r.TransferPpl.ToString("0.###", CultureInfo.InvariantCulture)} | {r.SearchRank} | {r.TransferRank} |", md);
        var t = Assert.Single(report.RootElement.GetProperty("transfer").EnumerateArray());
        Assert.Equal(other, t.GetProperty("model").GetString());
        Assert.Equal(Runtime.ContentHash.OfCheckpoint(other), t.GetProperty("model_sha256").GetString());
        Assert.Equal(rows.Count, t.GetProperty("rows").GetArrayLength());

        // Resumed: the stored transfer results are read back (the same timings), the transfer model is not loaded again.
        var (exit2, stdout2, err2) = CliRunner.Run([.. args, "--resume"]);
        Assert.True(exit2 == 0, err2);
        Assert.Contains("(this process 0)", stdout2);
        Assert.DoesNotContain("transfer: loading", err2);
        Assert.Contains($"transfer: all {rows.Count} results on {other} are stored", err2);
        Assert.Equal(csvLines, File.ReadAllLines(csvPath));
        Assert.All(csvLines.Skip(1), l => Assert.True(double.Parse(TransferSeconds(l), CultureInfo.InvariantCulture) > 0, l));

        // The finished run resumed with a copy of the search model as transfer model: no search work, and every
        // transfer perplexity is the search model's.
        string copy = TestCheckpoints.TempDir("transfer-copy");
        foreach (var f in Directory.GetFiles(s.Model)) File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
        var (exit3, stdout3, err3) = CliRunner.Run([.. SearchArgs(s, run), "--transfer-model", copy, "--resume"]);
        Assert.True(exit3 == 0, err3);
        Assert.Contains("(this process 0)", stdout3);
        var same = ReadCsv(csvPath);
        Assert.Equal(rows.Select(r => (r.Name, r.Metric, r.SearchPpl)), same.Select(r => (r.Name, r.Metric, r.SearchPpl)));
        foreach (var r in same)
        {
            Assert.Equal(r.SearchPpl, r.TransferPpl, 1e-9 * r.SearchPpl);
            Assert.Equal(r.SearchRank, r.TransferRank);
        }
    }

    [Fact]
    public void ATransferModelThatCannotBeLoadedIsRefusedBeforeTheSearch()
    {
        var s = PipelineTests.Setup();
        string run = TestCheckpoints.TempDir("transfer-bad");
        string missing = Path.Combine(run, "no-such-model");
        CliRunner.UserError("--transfer-model", [.. SearchArgs(s, run), "--transfer-model", missing]);
        Assert.False(File.Exists(Path.Combine(run, "search.db")));

        // Loadable config, broken weights: refused before the search too.
        string broken = TestCheckpoints.Write(TestCheckpoints.Config(), seed: 3);
        File.WriteAllBytes(Path.Combine(broken, "model.safetensors"), [1, 2, 3]);
        CliRunner.UserError($"--transfer-model {broken}", [.. SearchArgs(s, run), "--transfer-model", broken]);
        Assert.False(File.Exists(Path.Combine(run, "search.db")));

        // Another width than the search wants for N:M is refused as well (the search model passes: 32 and 48 divide by 4).
        var wide = TestCheckpoints.Config();
        wide["intermediate_size"] = 50;
        string odd = TestCheckpoints.Write(wide, seed: 3);
        CliRunner.UserError("intermediate_size", [.. SearchArgs(s, run), "--nm", "2:4", "--transfer-model", odd]);
        Assert.False(File.Exists(Path.Combine(run, "search.db")));

        // The same checkpoint twice (here as a copy elsewhere: same content) would only repeat the table.
        string good = TestCheckpoints.Write(TestCheckpoints.Config(), seed: 4);
        string copy = TestCheckpoints.TempDir("transfer-twice");
        foreach (var f in Directory.GetFiles(good)) File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
        string twice = CliRunner.UserError("given twice", [.. SearchArgs(s, run), "--transfer-model", $"{good},{copy}"]);
        Assert.Single(twice.Split('\n'), l => l.Contains("checking that it loads"));   // the copy is refused before its trial load
        Assert.False(File.Exists(Path.Combine(run, "search.db")));
    }
}
