// The run folder as untrusted, shared state: one process per run, damaged databases, inputs by content.
using System.Security.Cryptography;
using PrunerZero.Kernels;
using PrunerZero.Search;

namespace PrunerZero.Search.Tests;

public sealed class RunStoreSafetyTests() : TempRoot("store")
{
    static readonly Expr Target = MetricParser.Parse("mul(sqr(W), mms(G))");
    static readonly Dictionary<string, string> Params = new() { ["a"] = "1" };

    string Db(string name)
    {
        string d = Path.Combine(Root, name);
        Directory.CreateDirectory(d);
        return Path.Combine(d, RunStore.FileName);
    }

    [Fact]
    public void A_second_store_on_the_same_run_is_refused_until_the_first_is_closed()
    {
        string db = Db("lock");
        using (RunStore.Open(db, Params, resume: false))
        {
            var ex = Assert.Throws<RunStoreException>(() => RunStore.Open(db, Params, resume: true));
            Assert.Contains("in use by another search", ex.Message);
        }
        using (RunStore.Open(db, Params, resume: true)) { }   // released with its holder
    }

    [Fact]
    public void Two_concurrent_resumes_one_wins_the_other_is_refused_and_nothing_is_written_twice()
    {
        var o = new SearchOptions { RunDir = Path.Combine(Root, "race"), Population = 6, Iterations = 6, TopK = 3, Seed = 2, ReportTop = 2 };
        SearchRun.Run(o with { Iterations = 2 }, new SyntheticFitness(Target), null, default);
        using var gate = new Barrier(2);
        var outcomes = new Exception?[2];
        var threads = Enumerable.Range(0, 2).Select(i => new Thread(() =>
        {
            gate.SignalAndWait();
            try { SearchRun.Run(o with { Resume = true }, new SlowFitness(new SyntheticFitness(Target)), null, default); }
            catch (Exception e) { outcomes[i] = e; }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.Single(outcomes, e => e is null);
        Assert.IsType<RunStoreException>(Assert.Single(outcomes, e => e is not null));
    }

    /// <summary>Holds each evaluation long enough that the two runs overlap.</summary>
    sealed class SlowFitness(IFitness inner) : IFitness
    {
        public string Protocol => inner.Protocol;
        public int MaxParallelism => 1;
        public FitnessResult Screen(Expr m, CancellationToken ct) { Thread.Sleep(50); return inner.Screen(m, ct); }
        public FitnessResult Full(Expr m, CancellationToken ct) { Thread.Sleep(50); return inner.Full(m, ct); }
    }

    [Theory]
    [InlineData("random")]
    [InlineData("text")]
    [InlineData("other-schema")]
    public void A_database_that_is_not_a_run_is_refused_clearly(string kind)
    {
        string db = Db("bad-" + kind);
        switch (kind)
        {
            case "random": File.WriteAllBytes(db, RandomNumberGenerator.GetBytes(4096)); break;
            case "text": File.WriteAllText(db, "not a database"); break;
            default:
                using (var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={db};Pooling=False"))
                {
                    c.Open();
                    using var cmd = c.CreateCommand();
                    cmd.CommandText = "CREATE TABLE evaluations (id INTEGER PRIMARY KEY, something_else TEXT)";
                    cmd.ExecuteNonQuery();
                }
                break;
        }
        var ex = Assert.Throws<RunStoreException>(() => RunStore.Open(db, Params, resume: true));
        Assert.Contains(db, ex.Message);
    }

    [Fact]
    public void Inputs_are_part_of_the_identity()
    {
        var o = new SearchOptions
        {
            RunDir = Path.Combine(Root, "inputs"), Population = 4, Iterations = 1, TopK = 2, ReportTop = 1,
            Inputs = new Dictionary<string, string> { ["dataset_sha256"] = "aaaa" },
        };
        SearchRun.Run(o, new SyntheticFitness(Target), null, default);
        var ex = Assert.Throws<RunParametersMismatchException>(() => SearchRun.Run(o with
        {
            Resume = true, Inputs = new Dictionary<string, string> { ["dataset_sha256"] = "bbbb" },
        }, new SyntheticFitness(Target), null, default));
        Assert.Contains("input.dataset_sha256: stored 'aaaa', now 'bbbb'", ex.Message);
        SearchRun.Run(o with { Resume = true }, new SyntheticFitness(Target), null, default);   // the same inputs resume
    }

    [Fact]
    public void Search_heights_above_the_limit_are_refused()
    {
        var o = new SearchOptions { RunDir = Path.Combine(Root, "tall"), MinHeight = 3, MaxHeight = Trees.MaxSearchHeight + 1 };
        Assert.Throws<ArgumentException>(() => SearchRun.Run(o, new SyntheticFitness(Target), null, default));
        // At the limit, crossover children of the tallest trees stay within the Expr limits.
        var rng = Rng.For(1, 0, 0, 0);
        for (int i = 0; i < 50; i++)
        {
            var a = Trees.Full(rng, Trees.MaxSearchHeight);
            var b = Trees.Full(rng, Trees.MaxSearchHeight);
            var c = Trees.Crossover(rng, a, b);
            Assert.True(c.Depth <= Expr.MaxDepth && c.Size <= Expr.MaxSize);
        }
    }
}
