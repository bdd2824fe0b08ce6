// The transfer step of a search (SearchWorkflow.Run with transfer targets) on synthetic fitnesses: which rows, their numbers against
// the transfer fitness called directly, competition ranks, and resume (after a crash mid-transfer, after a finished
// one, with a second transfer model) counted in fitness calls and model opens.
using Microsoft.Data.Sqlite;
using PrunerZero.Kernels;
using PrunerZero.Search;

namespace PrunerZero.Workflows.Tests;

public sealed class TransferRunTests : TorchGuarded
{
    readonly string Root = Runtime.Tests.TestCheckpoints.TempDir("transfer");

    static readonly Expr SearchTarget = MetricParser.Parse("mul(sqr(W), mms(G))");
    static readonly Expr TransferTargetMetric = MetricParser.Parse("mul(abs(W), sqrt(X))");

    (SearchOptions Options, TransferTarget[] Transfers) Opts(TransferTarget? transfer, bool resume = false, TransferTarget? another = null) => (new()
    {
        RunDir = Path.Combine(Root, "run"), Population = 10, Iterations = 20, TopK = 4, Seed = 3,
        Resume = resume, Protocol = "sparsity=0.5", ReportTop = 4,
    }, [.. new[] { transfer, another }.OfType<TransferTarget>()]);

    static SearchReport Run((SearchOptions Options, TransferTarget[] Transfers) o, IFitness fitness) =>
        SearchWorkflow.Run(o.Options, o.Transfers, fitness, null, default);

    /// <summary>A transfer model whose fitness is a second synthetic one; counts how often it is opened and its Full calls.</summary>
    sealed class Second(string sha, int seed, int crashAtFull = int.MaxValue)
    {
        public int Opens, FullCalls;
        public TransferTarget Target => new("second-" + seed, sha, () => { Opens++; return new Counting(this, new SyntheticFitness(TransferTargetMetric, seed), crashAtFull); });

        sealed class Counting(Second owner, IFitness inner, int crashAtFull) : IFitness
        {
            public string Protocol => inner.Protocol;
            public int MaxParallelism => 1;
            public FitnessResult Screen(Expr m, CancellationToken ct) => throw new InvalidOperationException("transfer uses the full check only");
            public FitnessResult Full(Expr m, CancellationToken ct)
            {
                if (++owner.FullCalls == crashAtFull) throw new IOException("simulated crash in transfer");
                return inner.Full(m, ct);
            }
        }
    }

    long TransferRows()
    {
        using var db = new SqliteConnection($"Data Source={Path.Combine(Root, "run", RunStore.FileName)};Pooling=False");
        db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = "SELECT count(*) FROM transfer";
        return (long)cmd.ExecuteScalar()!;
    }

    [Fact]
    public void Rows_are_the_valid_leaders_and_the_baselines_with_the_transfer_fitness_values_and_competition_ranks()
    {
        var second = new Second("sha-a", seed: 9);
        var r = Run(Opts(second.Target), new SyntheticFitness(SearchTarget));
        var t = Assert.Single(r.Transfers);
        Assert.Equal("second-9", t.Model);
        Assert.Equal("sha-a", t.Sha256);

        var valid = r.Top.Select((c, i) => (c, i)).Where(p => p.c.Full is { Valid: true }).ToList();
        Assert.Equal([.. valid.Select(p => $"leader {p.i + 1}"), "magnitude", "wanda", "pruner-zero"], t.Rows.Select(x => x.Name));
        Assert.Equal([.. valid.Select(p => p.c.Expr.ToString()), .. r.Baselines.Select(b => b.Expr.ToString())], t.Rows.Select(x => x.Expr.ToString()));
        Assert.Equal([.. valid.Select(p => p.c.Full!.Perplexity), .. r.Baselines.Select(b => b.Full.Perplexity)], t.Rows.Select(x => x.SearchFull.Perplexity));

        var direct = new SyntheticFitness(TransferTargetMetric, 9);
        foreach (var row in t.Rows)
            Assert.Equal(direct.Full(row.Expr, default).Perplexity, row.Transfer.Perplexity);
        Assert.Equal(t.Rows.Select(x => Oos.Canonical(x.Expr)).Distinct().Count(), second.FullCalls);
        Assert.Equal(1, second.Opens);
        Assert.Equal(second.FullCalls, TransferRows());

        foreach (var row in t.Rows)
        {
            Assert.Equal(1 + t.Rows.Count(o => o.SearchFull.Perplexity < row.SearchFull.Perplexity), row.SearchRank);
            Assert.Equal(1 + t.Rows.Count(o => o.Transfer.Perplexity < row.Transfer.Perplexity), row.TransferRank);
        }
        // The two fitnesses disagree: wanda (X) is near the transfer target, far from the search one.
        var wanda = t.Rows.Single(x => x.Name == "wanda");
        Assert.True(wanda.Transfer.Perplexity < wanda.SearchFull.Perplexity);

        string md = File.ReadAllText(r.Files["report-md"]);
        Assert.Contains("## Transfer", md);
        Assert.Equal(t.Rows.Count + 1, File.ReadAllLines(r.Files["transfer"]).Length);
    }

    [Fact]
    public void A_resumed_run_evaluates_only_the_missing_transfers_and_none_once_finished()
    {
        var crashing = new Second("sha-a", seed: 9, crashAtFull: 3);
        Assert.Throws<IOException>(() => Run(Opts(crashing.Target), new SyntheticFitness(SearchTarget)));
        Assert.Equal(2, TransferRows());   // the two finished before the crash are stored

        var second = new Second("sha-a", seed: 9);
        var search = new SyntheticFitness(SearchTarget);
        var r = Run(Opts(second.Target, resume: true), search);
        Assert.Equal(0, search.ScreenCalls + search.FullCalls);
        int distinct = r.Transfers.Single().Rows.Select(x => Oos.Canonical(x.Expr)).Distinct().Count();
        Assert.Equal(distinct - 2, second.FullCalls);
        Assert.Equal(distinct, TransferRows());

        var again = new Second("sha-a", seed: 9);
        var r2 = Run(Opts(again.Target, resume: true), new SyntheticFitness(SearchTarget));
        Assert.Equal(0, again.Opens);   // nothing missing: the second model is not even opened
        Assert.Equal(r.Transfers.Single().Rows, r2.Transfers.Single().Rows);

        // Another transfer model (other content hash) on the finished run: its own results, no search work.
        var third = new Second("sha-b", seed: 11);
        search = new SyntheticFitness(SearchTarget);
        var r3 = Run(Opts(third.Target, resume: true), search);
        Assert.Equal(0, search.ScreenCalls + search.FullCalls);
        Assert.Equal(distinct, third.FullCalls);
        Assert.Equal("sha-b", r3.Transfers.Single().Sha256);
        var direct = new SyntheticFitness(TransferTargetMetric, 11);
        Assert.All(r3.Transfers.Single().Rows, row => Assert.Equal(direct.Full(row.Expr, default).Perplexity, row.Transfer.Perplexity));
    }

    [Fact]
    public void Two_transfer_models_each_get_their_own_table_and_one_csv_holds_both()
    {
        var a = new Second("sha-a", seed: 9);
        var b = new Second("sha-b", seed: 11);
        var r = Run(Opts(a.Target, another: b.Target), new SyntheticFitness(SearchTarget));
        Assert.Equal(["second-9", "second-11"], r.Transfers.Select(t => t.Model));
        Assert.Equal((1, 1), (a.Opens, b.Opens));
        foreach (var (t, seed) in r.Transfers.Zip([9, 11]))
        {
            var direct = new SyntheticFitness(TransferTargetMetric, seed);
            Assert.All(t.Rows, row => Assert.Equal(direct.Full(row.Expr, default).Perplexity, row.Transfer.Perplexity));
        }
        Assert.NotEqual(r.Transfers[0].Rows.Select(x => x.Transfer.Perplexity), r.Transfers[1].Rows.Select(x => x.Transfer.Perplexity));

        var csv = File.ReadAllLines(r.Files["transfer"]);
        Assert.StartsWith("transfer_model,name,metric,", csv[0]);
        Assert.Equal(r.Transfers.Sum(t => t.Rows.Count), csv.Length - 1);
        Assert.Equal(r.Transfers[0].Rows.Count, csv.Count(l => l.StartsWith("second-9,")));
        Assert.Equal(r.Transfers[1].Rows.Count, csv.Count(l => l.StartsWith("second-11,")));
        string md = File.ReadAllText(r.Files["report-md"]);
        Assert.True(md.IndexOf("## Transfer to `second-9`") is int i && i >= 0 && md.IndexOf("## Transfer to `second-11`") > i, md);
        using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(r.Files["report-json"]));
        Assert.Equal(["sha-a", "sha-b"], json.RootElement.GetProperty("transfer").EnumerateArray().Select(t => t.GetProperty("model_sha256").GetString()));
        Assert.Equal(a.FullCalls + b.FullCalls, TransferRows());
    }
}
