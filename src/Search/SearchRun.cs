// Algorithm 1 of Pruner-Zero: ramped half-and-half initial population, then per iteration one child
// from two parents drawn uniformly from the top-k (subtree crossover, mutation with probability
// `mutation`, OOS), evaluated and inserted steady-state (it replaces the worst member if strictly better).
//
// Iteration t (1..Iterations) produces exactly one child. With fitness.MaxParallelism = B > 1,
// iterations are grouped in fixed batches [bB+1, (b+1)B]: the batch's children are generated in
// iteration order from the population as it was at the batch start, evaluated concurrently, and
// inserted in iteration order, so nothing depends on timing. B is part of the run's identity.
//
// Determinism and resume: every random choice comes from Rng.For(seed, iteration, slot, attempt), and
// fitness values come from the run database when stored. A resumed run replays the whole search from
// iteration 0, calling the fitness only for candidates not yet stored, and therefore ends exactly where
// an uninterrupted run would.
//
// Mask fingerprints: when the fitness also implements IMaskFingerprint, each new candidate's masks are hashed
// first (no forward pass; PruningFitness prunes with them, so the evaluation that may follow scores nothing again). A candidate whose masks equal an earlier evaluation's gets that
// fitness copied ("same mask", stored with same_mask_as); within a batch the first in iteration order is
// evaluated and the others copy it. Same masks mean the same pruned model, so a copy is exactly the value an
// evaluation would give and the search (population, history of fitness) is unchanged; only forward passes are saved.
// The leaders (and the full re-check) take one member per mask.
//
// Early stops: a child is screened against a bar, the population's worst screen perplexity at its batch's start (+∞ while
// the population fills). A child can only enter by being strictly better than the worst at its insertion, which is at
// most that bar (the worst only improves), so a screen that proves its perplexity at or above the bar (ScreenPlan.Bound)
// may stop: the child is stored as cut, with its bound and the windows seen, and the search goes on exactly as it would
// have. With stages (ScreenPlan.Stage) the stop rests on an estimate instead, and the trajectory may differ.
using System.Diagnostics;
using System.Globalization;
using System.Runtime.ExceptionServices;
using PrunerZero.Kernels;

namespace PrunerZero.Search;

public static class SearchRun
{
    /// <summary>Version of generation/OOS/selection; a stored run made by a different version is not resumed.</summary>
    public const string Algorithm = "pruner-zero-gp/1";

    /// <summary>The baselines evaluated through the same fitness at the end.</summary>
    public static readonly IReadOnlyList<(string Name, Expr Expr)> BaselineMetrics =
        [("magnitude", Metrics.Magnitude), ("wanda", Metrics.Wanda), ("pruner-zero", Metrics.PrunerZero)];

    /// <summary>Opens (or creates) the run's store, runs the search and returns its report; writes only the store.</summary>
    public static SearchReport Run(SearchOptions options, IFitness fitness, IProgress<string>? progress, CancellationToken ct)
    {
        using var store = Open(options, fitness, progress);
        return Run(options, fitness, store, progress, ct);
    }

    /// <summary>
    /// The run's store, checked against the run's identity (<see cref="Parameters"/>): created for a new run, opened for a
    /// resume. The caller keeps it (and the run folder's lock) for what follows the search (the transfer step).
    /// </summary>
    public static RunStore Open(SearchOptions options, IFitness fitness, IProgress<string>? progress)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(fitness);
        options.Validate();
        Directory.CreateDirectory(options.RunDir);
        var dbPath = Path.Combine(options.RunDir, RunStore.FileName);
        bool resume = options.Resume && File.Exists(dbPath);
        if (options.Resume && !resume)
            progress?.Report($"nothing to resume in {options.RunDir}; starting a new run");
        // Iteration t depends only on (seed, t) and the state before it, so a run may be extended
        // (or stopped early) with a different iteration count: the shared prefix is identical.
        return RunStore.Open(dbPath, Parameters(options, fitness), resume, mutable: new HashSet<string> { "iterations" }, options.Upgrades);
    }

    /// <summary>Runs the search on an open store (<see cref="Open"/>) and returns its report; writes only the store.</summary>
    public static SearchReport Run(SearchOptions options, IFitness fitness, RunStore store, IProgress<string>? progress, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(fitness);
        options.Validate();
        var engine = new Engine(options, fitness, store, Batch(fitness), progress, ct);
        engine.Search();
        return engine.Finish();
    }

    static int Batch(IFitness fitness) => Math.Max(1, fitness.MaxParallelism);

    /// <summary>The run's identity as stored in its params table; a resume with other values is refused.</summary>
    static Dictionary<string, string> Parameters(SearchOptions options, IFitness fitness)
    {
        var parameters = new Dictionary<string, string>
        {
            ["algorithm"] = Algorithm,
            ["population"] = Inv(options.Population),
            ["iterations"] = Inv(options.Iterations),
            ["min_height"] = Inv(options.MinHeight),
            ["max_height"] = Inv(options.MaxHeight),
            ["top_k"] = Inv(options.TopK),
            ["mutation"] = options.Mutation.ToString("R", CultureInfo.InvariantCulture),
            ["seed"] = Inv(options.Seed),
            ["max_attempts"] = Inv(options.MaxAttempts),
            ["batch"] = Inv(Batch(fitness)),
            ["protocol"] = options.Protocol,
            ["fitness_protocol"] = fitness.Protocol ?? "",
        };
        foreach (var (k, v) in options.Inputs) parameters.Add("input." + k, v);
        return parameters;
    }

    static string Inv(long v) => v.ToString(CultureInfo.InvariantCulture);

    sealed record Candidate(Expr Generated, Expr Canonical, int Iteration, int Slot, int Attempt, long? Parent1, long? Parent2)
    {
        public string Key => Canonical.ToString();
    }

    sealed record Member(StoredEvaluation Eval, Expr Expr)
    {
        public double Key => Eval.Screen.Key;
    }

    sealed class Engine(SearchOptions o, IFitness fitness, RunStore store, int batch, IProgress<string>? progress, CancellationToken ct)
    {
        readonly Dictionary<string, StoredEvaluation> _stored = store.LoadEvaluations();
        readonly Dictionary<int, List<long>> _storedPops = store.LoadPopulations();
        readonly HashSet<string> _seen = new(StringComparer.Ordinal); // canonical forms evaluated so far in this (replayed) run
        readonly List<Member> _pop = [];
        readonly List<HistoryPoint> _history = [];
        readonly Stopwatch _clock = Stopwatch.StartNew();
        readonly IMaskFingerprint? _masks = fitness as IMaskFingerprint;
        readonly Dictionary<string, StoredEvaluation> _byMask = new(StringComparer.Ordinal); // fingerprint -> the evaluation that measured it
        int _evaluations, _duplicates, _skipped, _fitnessCalls, _sameMask, _cut;

        static readonly Comparison<Member> ByFitness = (a, b) =>
        {
            int c = a.Key.CompareTo(b.Key);
            if (c != 0) return c;
            // Ties: the earlier candidate ranks first, by (iteration, slot) rather than by database id: within a
            // batch, ids follow the order in which evaluations finish, which depends on timing. With batch 1 both
            // orders are the same.
            c = a.Eval.Iteration.CompareTo(b.Eval.Iteration);
            if (c != 0) return c;
            c = a.Eval.Slot.CompareTo(b.Eval.Slot);
            return c != 0 ? c : a.Eval.Id.CompareTo(b.Eval.Id);
        };

        public void Search()
        {
            if (_stored.Count > 0)
                progress?.Report($"resuming: {_stored.Count} evaluations stored; replaying the run without re-evaluating them");
            InitialPopulation();
            for (int t = 1; t <= o.Iterations;)
            {
                ct.ThrowIfCancellationRequested();
                int end = Math.Min(o.Iterations, ((t - 1) / batch + 1) * batch);
                var top = _pop.Take(Math.Min(o.TopK, _pop.Count)).ToList();
                var children = new List<Candidate?>();
                for (int it = t; it <= end; it++) children.Add(Child(it, it - t, top));
                double bar = _pop.Count >= o.Population ? _pop[^1].Key : double.PositiveInfinity;
                var results = Evaluate(children.OfType<Candidate>().ToList(), bar);
                int r = 0;
                for (int i = 0; i < children.Count; i++)
                {
                    var c = children[i];
                    StoredEvaluation? e = null;
                    if (c is null) _skipped++;
                    else
                    {
                        e = results[r++];
                        _evaluations++;
                        Insert(new Member(e, c.Canonical));
                    }
                    EndIteration(t + i, c, e);
                }
                t = end + 1;
            }
        }

        void InitialPopulation()
        {
            // Draw ramped half-and-half trees until the population holds o.Population valid members;
            // invalid ones are stored (never re-evaluated) but take no place. Bounded at 10x the size.
            int slot = 0, maxSlots = 10 * o.Population;
            while (_pop.Count < o.Population && slot < maxSlots)
            {
                ct.ThrowIfCancellationRequested();
                int want = Math.Min(batch, o.Population - _pop.Count);
                var cands = new List<Candidate>();
                while (cands.Count < want && slot < maxSlots)
                {
                    var c = Initial(slot++);
                    if (c is null) _skipped++;
                    else cands.Add(c);
                }
                foreach (var (c, e) in cands.Zip(Evaluate(cands, double.PositiveInfinity)))
                {
                    _evaluations++;
                    if (e.Screen.Valid && double.IsFinite(e.Screen.Perplexity)) _pop.Add(new Member(e, c.Canonical));
                    progress?.Report($"initial population: {_pop.Count}/{o.Population} valid members from {_evaluations} candidates; {c.Key} -> {e.Screen.Describe()}");
                }
            }
            _pop.Sort(ByFitness);
            if (_pop.Count < o.Population)
                progress?.Report($"warning: only {_pop.Count} valid members after {maxSlots} initial candidates; continuing with a smaller population");
            EndIteration(0, null, null);
        }

        Candidate? Initial(int slot)
        {
            for (int a = 0; a < o.MaxAttempts; a++)
            {
                var rng = Rng.For(o.Seed, 0, slot, a);
                var g = Trees.RampedHalfAndHalf(rng, slot, o.MinHeight, o.MaxHeight);
                var c = Accept(g, 0, slot, a, null, null);
                if (c is not null) return c;
            }
            return null;
        }

        /// <summary>One child for iteration t; null when MaxAttempts fresh tries all failed (the iteration is skipped).</summary>
        Candidate? Child(int t, int slot, List<Member> top)
        {
            for (int a = 0; a < o.MaxAttempts; a++)
            {
                var rng = Rng.For(o.Seed, t, 0, a);
                if (top.Count == 0)
                {
                    // No valid member at all: restart from a random tree instead of crossover.
                    var g0 = Trees.RampedHalfAndHalf(rng, rng.Next(1 << 20), o.MinHeight, o.MaxHeight);
                    var c0 = Accept(g0, t, slot, a, null, null);
                    if (c0 is not null) return c0;
                    continue;
                }
                var p1 = rng.Pick(top);
                var p2 = rng.Pick(top);
                var g = Trees.Crossover(rng, p1.Expr, p2.Expr);
                if (rng.NextDouble() < o.Mutation) g = Trees.Mutate(rng, g, o.MaxHeight);
                if (!Trees.InBounds(g, o.MinHeight, o.MaxHeight)) continue;
                var c = Accept(g, t, slot, a, p1.Eval.Id, p2.Eval.Id);
                if (c is not null) return c;
            }
            return null;
        }

        /// <summary>OOS, then reject constants (no ranking) and canonical forms already evaluated.</summary>
        Candidate? Accept(Expr generated, int t, int slot, int attempt, long? p1, long? p2)
        {
            var canon = Oos.Simplify(generated);
            // OOS never grows a tree, but pulling neg towards the root can add a level.
            if (Oos.IsConstant(canon) || Trees.Height(canon) > o.MaxHeight) return null;
            if (!_seen.Add(canon.ToString())) { _duplicates++; return null; }
            return new Candidate(generated, canon, t, slot, attempt, p1, p2);
        }

        /// <summary>
        /// Screens the candidates against <paramref name="bar"/> (stored results first; then new ones whose masks equal an
        /// evaluated one's copy its fitness; the rest concurrently); results in input order. A copy of a cut result is cut
        /// too, and rightly: the bar it was cut at is at or above today's.
        /// </summary>
        StoredEvaluation[] Evaluate(List<Candidate> cands, double bar)
        {
            var results = new StoredEvaluation[cands.Count];
            var todo = new List<int>();
            for (int i = 0; i < cands.Count; i++)
                if (_stored.TryGetValue(cands[i].Key, out var s)) results[i] = s;
                else todo.Add(i);
            var fps = new string?[cands.Count];
            var fpSeconds = new double[cands.Count];
            if (_masks is not null)
                RunAll(todo, i =>
                {
                    var sw = Stopwatch.StartNew();
                    fps[i] = _masks.MaskFingerprint(cands[i].Canonical, ct);
                    fpSeconds[i] = sw.Elapsed.TotalSeconds;
                });
            // In iteration order: a stored result registers its mask; a new candidate copies a registered mask, or
            // one evaluated earlier in this batch (after it finishes), or is evaluated.
            var evaluate = new List<int>();
            var pending = new Dictionary<string, int>(StringComparer.Ordinal);
            var later = new List<(int Copy, int From)>();
            for (int i = 0; i < cands.Count; i++)
            {
                if (results[i] is { } stored) { Register(stored); continue; }
                var fp = fps[i];
                if (fp is not null && _byMask.TryGetValue(fp, out var src)) results[i] = Copy(cands[i], fp, src, fpSeconds[i]);
                else if (fp is not null && pending.TryGetValue(fp, out int j)) later.Add((i, j));
                else
                {
                    if (fp is not null) pending[fp] = i;
                    evaluate.Add(i);
                }
            }
            void One(int i)
            {
                var c = cands[i];
                var sw = Stopwatch.StartNew();
                var r = fitness.Screen(c.Canonical, bar, ct)
                        ?? throw new InvalidOperationException($"fitness returned null for {c.Key}");
                if (r.Seconds <= 0) r = r with { Seconds = sw.Elapsed.TotalSeconds };
                Interlocked.Increment(ref _fitnessCalls);
                results[i] = store.AddEvaluation(c.Key, c.Generated, c.Canonical, c.Iteration, c.Slot, c.Attempt, c.Parent1, c.Parent2, r, fps[i]);
                if (r.Worker is not null) store.SetWorker(c.Key, "screen", r.Worker);
            }
            RunAll(evaluate, One);
            foreach (int i in evaluate) Register(results[i]);
            foreach (var (i, j) in later) results[i] = Copy(cands[i], fps[i]!, results[j], fpSeconds[i]);
            foreach (int i in todo) _stored[cands[i].Key] = results[i];
            foreach (var r in results)
            {
                if (r.SameMaskAs is not null) _sameMask++;
                if (r.Screen.Cut is not null) _cut++;
            }
            return results;
        }

        void Register(StoredEvaluation e)
        {
            if (e.Fingerprint is not null && e.SameMaskAs is null) _byMask.TryAdd(e.Fingerprint, e);
        }

        StoredEvaluation Copy(Candidate c, string fp, StoredEvaluation from, double seconds) =>
            store.AddEvaluation(c.Key, c.Generated, c.Canonical, c.Iteration, c.Slot, c.Attempt, c.Parent1, c.Parent2,
                                from.Screen with { Seconds = seconds, Worker = null, Tokens = 0 }, fp, from.Id);

        void RunAll(List<int> items, Action<int> body)
        {
            if (batch == 1 || items.Count <= 1)
            {
                foreach (int i in items) { ct.ThrowIfCancellationRequested(); body(i); }
                return;
            }
            try
            {
                Parallel.ForEach(items, new ParallelOptions { MaxDegreeOfParallelism = batch, CancellationToken = ct }, body);
            }
            catch (AggregateException ae) when (ae.InnerExceptions.Count > 0)
            {
                ExceptionDispatchInfo.Capture(ae.InnerExceptions[0]).Throw();
            }
        }

        void Insert(Member m)
        {
            if (!(m.Eval.Screen.Valid && double.IsFinite(m.Eval.Screen.Perplexity))) return;
            if (_pop.Count < o.Population) _pop.Add(m);
            else if (m.Key < _pop[^1].Key) _pop[^1] = m; // steady state: replaces the worst only if strictly better
            else return;
            _pop.Sort(ByFitness);
        }

        void EndIteration(int t, Candidate? child, StoredEvaluation? e)
        {
            var ids = _pop.Select(m => m.Eval.Id).ToList();
            if (_storedPops.TryGetValue(t, out var was) && !was.SequenceEqual(ids))
                throw new InvalidOperationException(
                    $"the replayed population at iteration {t} differs from the stored one: the run database was made by " +
                    "a different version of the search or a non-deterministic fitness; start a new run");
            var keys = _pop.Select(m => m.Key).ToArray();
            var h = new HistoryPoint(t, keys.Length > 0 ? keys[0] : double.NaN, Median(keys), _pop.Count,
                                     _evaluations, _duplicates, _skipped) { SameMask = _sameMask, Cut = _cut };
            _history.Add(h);
            store.SaveIteration(t, ids, h);
            if (progress is null) return;
            double rate = _fitnessCalls / Math.Max(1e-9, _clock.Elapsed.TotalSeconds);
            string what = t == 0 ? "initial population"
                : child is null ? "no child (attempts exhausted)"
                : $"child {child.Key} -> {e!.Screen.Describe()}" +
                  (e.SameMaskAs is { } from ? $" (same mask as #{from})" : "");
            progress.Report(string.Create(CultureInfo.InvariantCulture,
                $"iter {t}/{o.Iterations}  best {h.Best:0.###}  median {h.Median:0.###}  evals {_evaluations} (new {_fitnessCalls}, {rate:0.00}/s)  cache hits {_duplicates}  same mask {_sameMask}  cut {_cut}  {what}"));
        }

        static double Median(double[] sorted)
        {
            if (sorted.Length == 0) return double.NaN;
            int n = sorted.Length;
            return n % 2 == 1 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
        }

        public SearchReport Finish()
        {
            // Re-check the leaders with the full fitness (stored, so a resumed run does not repeat them).
            // One leader per mask: a same-mask member (a copy, or an earlier evaluation's twin) would repeat its results.
            var leaderMasks = new HashSet<string>(StringComparer.Ordinal);
            var leaders = _pop.Where(m => _stored[m.Eval.Canonical] is var e && (e.Fingerprint is null || leaderMasks.Add(e.Fingerprint)))
                              .Take(o.ReportTop).ToList();
            var need = Enumerable.Range(0, leaders.Count).Where(i => _stored[leaders[i].Eval.Canonical].Full is null).ToList();
            if (need.Count > 0) progress?.Report($"re-checking {need.Count} leaders with the full fitness");
            RunAll(need, i =>
            {
                var m = leaders[i];
                var sw = Stopwatch.StartNew();
                var full = fitness.Full(m.Expr, ct) ?? throw new InvalidOperationException($"fitness returned null for {m.Expr}");
                if (full.Seconds <= 0) full = full with { Seconds = sw.Elapsed.TotalSeconds };
                store.SetFull(m.Eval.Id, full);
                if (full.Worker is not null) store.SetWorker(m.Eval.Canonical, "full", full.Worker);
                lock (_stored) _stored[m.Eval.Canonical] = _stored[m.Eval.Canonical] with { Full = full };
            });
            var top = leaders.Select(m => ToResult(_stored[m.Eval.Canonical], m.Expr)).ToList();

            var baselines = new List<BaselineResult>();
            if (o.Baselines)
            {
                var storedBase = store.LoadBaselines();
                foreach (var (name, expr) in BaselineMetrics)
                {
                    ct.ThrowIfCancellationRequested();
                    if (!storedBase.TryGetValue(name, out var b))
                    {
                        progress?.Report($"baseline {name} = {expr}");
                        b = new BaselineResult(name, expr, fitness.Screen(expr, ct), fitness.Full(expr, ct));
                        store.AddBaseline(b);
                        if (b.Screen.Worker is not null) store.SetWorker("baseline:" + name, "screen", b.Screen.Worker);
                        if (b.Full.Worker is not null) store.SetWorker("baseline:" + name, "full", b.Full.Worker);
                    }
                    baselines.Add(b);
                }
            }

            // Best: the leader that holds up on the full split; screen fitness decides ties and the no-full case.
            CandidateResult? best = top.Where(c => c.Full is { Valid: true } f && double.IsFinite(f.Perplexity))
                                       .OrderBy(c => c.Full!.Perplexity).FirstOrDefault() ?? top.FirstOrDefault();
            var population = _pop.Select(m => ToResult(_stored[m.Eval.Canonical], m.Expr)).ToList();
            var report = new SearchReport(top, best, baselines, population, _history, _fitnessCalls, _evaluations, _duplicates,
                                          new Dictionary<string, string>())
            {
                Workers = store.LoadWorkers(), SameMask = _sameMask, FingerprintMethod = _masks?.FingerprintMethod, Cut = _cut,
                ForwardTokens = _stored.Values.Where(e => _seen.Contains(e.Canonical)).Sum(e => e.Screen.Tokens + (e.Full?.Tokens ?? 0))
                                + baselines.Sum(b => b.Screen.Tokens + b.Full.Tokens),
            };
            return report;
        }

        static CandidateResult ToResult(StoredEvaluation e, Expr canon) =>
            new(e.Id, canon, e.Generated, e.Iteration, e.Parent1, e.Parent2, e.Screen, e.Full);
    }
}
