// End-to-end search on the synthetic mask-distance fitness: determinism, crash/resume equivalence,
// invalid candidates, parameter checks; the search writes only its store (report files: PrunerZero.Workflows.Tests).
using Microsoft.Data.Sqlite;
using PrunerZero.Kernels;
using PrunerZero.Search;

namespace PrunerZero.Search.Tests;

public sealed class SearchRunTests : IDisposable
{
    readonly string _root = Path.Combine(Path.GetTempPath(), "pz-search-" + Guid.NewGuid().ToString("N"));
    public SearchRunTests() => Directory.CreateDirectory(_root);
    public void Dispose() { if (Environment.GetEnvironmentVariable("PZ_KEEP_RUNS") is null) try { Directory.Delete(_root, true); } catch (IOException) { } }

    static readonly Expr Target = MetricParser.Parse("mul(sqr(W), mms(G))");

    SearchOptions Opts(string name, long seed = 7, int iterations = 40, bool resume = false) => new()
    {
        RunDir = Path.Combine(_root, name), Population = 12, Iterations = iterations, TopK = 4, Seed = seed,
        Resume = resume, Protocol = "sparsity=0.5", ReportTop = 3,
    };

    /// <summary>Wraps a fitness: throws at the n-th Screen/Full call of this instance, and records every completed call.</summary>
    sealed class Crashing(IFitness inner, int crashAtScreen = int.MaxValue, int crashAtFull = int.MaxValue, int parallel = 1) : IFitness
    {
        int _screens, _fulls;
        public readonly List<string> Screened = [];
        public string Protocol => inner.Protocol;
        public int MaxParallelism => parallel;
        public FitnessResult Screen(Expr m, CancellationToken ct)
        {
            if (Interlocked.Increment(ref _screens) == crashAtScreen) throw new IOException("simulated crash");
            var r = inner.Screen(m, ct);
            lock (Screened) Screened.Add(m.ToString());
            return r;
        }
        public FitnessResult Full(Expr m, CancellationToken ct)
        {
            if (Interlocked.Increment(ref _fulls) == crashAtFull) throw new IOException("simulated crash in full");
            return inner.Full(m, ct);
        }
    }

    static List<string> Sequence(string runDir)
    {
        using var db = new SqliteConnection($"Data Source={Path.Combine(runDir, RunStore.FileName)};Pooling=False");
        db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = "SELECT canonical, iteration, slot, screen_ppl FROM evaluations ORDER BY iteration, slot";
        using var r = cmd.ExecuteReader();
        var l = new List<string>();
        while (r.Read()) l.Add($"{r.GetInt32(1)}/{r.GetInt32(2)} {r.GetString(0)} {(r.IsDBNull(3) ? "-" : r.GetDouble(3))}");
        return l;
    }

    static void AssertSameResult(SearchReport a, SearchReport b, string dirA, string dirB)
    {
        Assert.Equal(a.Population.Select(c => c.Expr.ToString()), b.Population.Select(c => c.Expr.ToString()));
        Assert.Equal(a.Population.Select(c => c.Screen.Perplexity), b.Population.Select(c => c.Screen.Perplexity));
        Assert.Equal(a.Best?.Expr, b.Best?.Expr);
        Assert.Equal(a.Top.Select(c => c.Full?.Perplexity), b.Top.Select(c => c.Full?.Perplexity));
        Assert.Equal(a.History, b.History);
        Assert.Equal(Sequence(dirA), Sequence(dirB));
        Assert.Equal(a.Baselines.Select(x => x.Screen.Perplexity), b.Baselines.Select(x => x.Screen.Perplexity));
    }

    [Fact]
    public void Same_seed_gives_the_same_run_and_another_seed_does_not()
    {
        var a = SearchRun.Run(Opts("a"), new SyntheticFitness(Target), null, default);
        var b = SearchRun.Run(Opts("b"), new SyntheticFitness(Target), null, default);
        AssertSameResult(a, b, Opts("a").RunDir, Opts("b").RunDir);
        SearchRun.Run(Opts("c", seed: 8), new SyntheticFitness(Target), null, default);
        Assert.NotEqual(Sequence(Opts("a").RunDir), Sequence(Opts("c").RunDir));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void Crashed_and_resumed_run_equals_the_uninterrupted_one(int parallel)
    {
        var refFit = new Crashing(new SyntheticFitness(Target), parallel: parallel);
        var reference = SearchRun.Run(Opts("ref"), refFit, null, default);

        var calls = new List<string>();
        var o = Opts("crash");
        // 1: dies during the initial population; 2: mid-search; 3: cancelled from the progress callback;
        // 4: dies while re-checking the leaders with Full; 5: runs to the end.
        var f1 = new Crashing(new SyntheticFitness(Target), crashAtScreen: 5, parallel: parallel);
        Assert.Throws<IOException>(() => SearchRun.Run(o, f1, null, default));
        calls.AddRange(f1.Screened);
        var f2 = new Crashing(new SyntheticFitness(Target), crashAtScreen: 20, parallel: parallel);
        Assert.Throws<IOException>(() => SearchRun.Run(o with { Resume = true }, f2, null, default));
        calls.AddRange(f2.Screened);
        var f3 = new Crashing(new SyntheticFitness(Target), parallel: parallel);
        using (var cts = new CancellationTokenSource())
        {
            var progress = new SyncProgress(s => { if (s.StartsWith("iter 30/")) cts.Cancel(); });
            Assert.ThrowsAny<OperationCanceledException>(() => SearchRun.Run(o with { Resume = true }, f3, progress, cts.Token));
        }
        calls.AddRange(f3.Screened);
        var f4 = new Crashing(new SyntheticFitness(Target), crashAtFull: 2, parallel: parallel);
        Assert.Throws<IOException>(() => SearchRun.Run(o with { Resume = true }, f4, null, default));
        calls.AddRange(f4.Screened);
        var f5 = new Crashing(new SyntheticFitness(Target), parallel: parallel);
        var resumed = SearchRun.Run(o with { Resume = true }, f5, null, default);
        calls.AddRange(f5.Screened);

        AssertSameResult(reference, resumed, Opts("ref").RunDir, o.RunDir);
        // Nothing stored was evaluated again: the union of all processes' calls is the reference's calls, each once.
        Assert.Equal(calls.Count, calls.Distinct().Count());
        Assert.Equal(refFit.Screened.Order(StringComparer.Ordinal), calls.Order(StringComparer.Ordinal));
        Assert.True(f2.Screened.Count > 0 && f5.Screened.Count < refFit.Screened.Count);
    }

    sealed class SyncProgress(Action<string> on) : IProgress<string> { public void Report(string v) => on(v); }

    [Fact]
    public void Resume_with_different_parameters_is_refused_and_a_new_run_never_overwrites()
    {
        var o = Opts("p", iterations: 5);
        SearchRun.Run(o, new SyntheticFitness(Target), null, default);
        var ex = Assert.Throws<RunParametersMismatchException>(() =>
            SearchRun.Run(o with { Resume = true, Population = 13 }, new SyntheticFitness(Target), null, default));
        Assert.Contains("population: stored '12', now '13'", ex.Message);
        Assert.Throws<RunStoreException>(() => SearchRun.Run(o, new SyntheticFitness(Target), null, default));
        // More iterations extend the run: the same as a fresh run of that length.
        var extended = SearchRun.Run(o with { Resume = true, Iterations = 12 }, new SyntheticFitness(Target), null, default);
        var fresh = SearchRun.Run(Opts("p2", iterations: 12), new SyntheticFitness(Target), null, default);
        Assert.Equal(fresh.Population.Select(c => c.Expr), extended.Population.Select(c => c.Expr));
        Assert.Equal(fresh.History, extended.History);
    }

    /// <summary>Rejects every metric that uses X, and fails outright on some.</summary>
    sealed class Picky(IFitness inner, bool allInvalid = false) : IFitness
    {
        public string Protocol => "picky";
        public int MaxParallelism => 1;
        public FitnessResult Screen(Expr m, CancellationToken ct) =>
            allInvalid || m.UsesX ? FitnessResult.Invalid("uses X") : inner.Screen(m, ct);
        public FitnessResult Full(Expr m, CancellationToken ct) => Screen(m, ct);
    }

    [Fact]
    public void Invalid_candidates_are_stored_but_never_enter_the_population()
    {
        var o = Opts("inv", iterations: 30);
        var r = SearchRun.Run(o, new Picky(new SyntheticFitness(Target)), null, default);
        Assert.All(r.Population, c => Assert.False(c.Expr.UsesX));
        Assert.Contains(Sequence(o.RunDir), s => s.EndsWith(" -"));

        var all = SearchRun.Run(Opts("allinv", iterations: 10) with { Population = 4 }, new Picky(new SyntheticFitness(Target), allInvalid: true), null, default);
        Assert.Empty(all.Population);
        Assert.Null(all.Best);
    }

    [Fact]
    public void Search_improves_monotonically_and_matches_the_hidden_targets_masks()
    {
        var o = Opts("find", seed: 1, iterations: 300) with { Population = 30, TopK = 8 };
        var fit = new SyntheticFitness(Target);
        var r = SearchRun.Run(o, fit, null, default);
        for (int i = 1; i < r.History.Count; i++) Assert.True(r.History[i].Best <= r.History[i - 1].Best);
        Assert.True(r.History[^1].Best < r.History[0].Best, $"no improvement: {r.History[0].Best} -> {r.History[^1].Best}");
        // 1.0 = the candidate's masks equal the target's on every screen matrix.
        Assert.True(r.History[^1].Best <= 1.0 + 1e-9, $"best {r.History[^1].Best}: {r.Top[0].Expr}");
        var pz = r.Baselines.Single(b => b.Name == "pruner-zero");
        Assert.Equal(1.0, pz.Screen.Perplexity);
    }

    [Fact]
    public void The_search_writes_only_its_store()
    {
        var o = Opts("rep", iterations: 10);
        var r = SearchRun.Run(o, new SyntheticFitness(Target), new SyncProgress(_ => { }), default);
        Assert.All(r.Top, c => Assert.NotNull(c.Full));
        Assert.Empty(r.Files);   // the report files are the search workflow's (tests/PrunerZero.Workflows.Tests/SearchReportFilesTests.cs)
        Assert.Equal([RunStore.FileName, RunStore.LockFileName],
            Directory.GetFiles(o.RunDir).Select(Path.GetFileName).Where(n => !n!.EndsWith("-wal") && !n.EndsWith("-shm")).Order(StringComparer.Ordinal));
    }
}
