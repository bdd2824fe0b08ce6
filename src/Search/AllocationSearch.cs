// Evolutionary search of a per-block sparsity allocation, in the manner of EvoPress (Sieberling et al., ICML 2025):
// every block's sparsity is target + step · level with the levels summing to zero, so every candidate prunes exactly
// the target share of the weights (blocks of one model hold the same weight count). A child is its parent with
// level-switch mutations (one block one step up, another one step down). Each generation screens the parent and its
// children in stages: every candidate on few calibration windows, the best few on more, and so on; the parent always
// reaches the last stage (elitism), so the last stage's loss of the parent never rises. Losses are deterministic
// functions of (allocation, windows), so a resumed run (RunStore.Allocation.cs) makes the same decisions.
using System.Globalization;

namespace PrunerZero.Search;

/// <summary>Loss of the model pruned with a per-block allocation, measured on the first <c>windows</c> calibration windows; lower is better.</summary>
public interface IAllocationFitness
{
    /// <summary>What the loss is and on which data, for the store's identity and the report.</summary>
    string Protocol { get; }

    int Blocks { get; }

    double Loss(IReadOnlyList<double> blockSparsity, int windows, CancellationToken ct);
}

public sealed record AllocationSearchOptions
{
    public required double Target { get; init; }
    /// <summary>Grid step of the block sparsities.</summary>
    public double Step { get; init; } = 0.025;
    public int Generations { get; init; } = 50;
    /// <summary>Children per generation.</summary>
    public int Offspring { get; init; } = 16;
    /// <summary>Level switches per child: 1 to this many, drawn uniformly.</summary>
    public int MaxSwitches { get; init; } = 3;
    /// <summary>(windows, survivors) per stage, windows rising; the last stage keeps one.</summary>
    public IReadOnlyList<(int Windows, int Survivors)> Stages { get; init; } = [(2, 4), (8, 1)];
    public double MinSparsity { get; init; } = 0;
    public double MaxSparsity { get; init; } = 0.95;
    public long Seed { get; init; }
    /// <summary>Where the search starts, one sparsity per block (e.g. OWL's), put on the grid by <see cref="AllocationSearch.Levels"/>; null: uniform.</summary>
    public IReadOnlyList<double>? Start { get; init; }

    public void Validate(int blocks)
    {
        if (!(Target > 0 && Target < 1)) throw new ArgumentException($"target sparsity must be in (0, 1), got {Target}", nameof(Target));
        if (!(Step > 0 && Step < 0.5)) throw new ArgumentException($"step must be in (0, 0.5), got {Step}", nameof(Step));
        if (Generations < 1 || Offspring < 1 || MaxSwitches < 1)
            throw new ArgumentException($"generations, offspring and switches must be at least 1 (got {Generations}, {Offspring}, {MaxSwitches})");
        if (Stages.Count == 0) throw new ArgumentException("at least one stage is needed", nameof(Stages));
        for (int i = 0; i < Stages.Count; i++)
        {
            var (w, keep) = Stages[i];
            if (w < 1 || keep < 1) throw new ArgumentException($"stage {i + 1}: windows and survivors must be at least 1, got {w}, {keep}", nameof(Stages));
            if (i > 0 && (w < Stages[i - 1].Windows || keep > Stages[i - 1].Survivors))
                throw new ArgumentException($"stage {i + 1} must use at least the windows and keep at most the survivors of stage {i}", nameof(Stages));
        }
        if (Stages[^1].Survivors != 1) throw new ArgumentException("the last stage keeps one candidate", nameof(Stages));
        if (blocks < 2) throw new ArgumentException($"an allocation needs at least 2 blocks, the model has {blocks}");
        if (!(MinSparsity <= Target && Target <= MaxSparsity && MaxSparsity < 1))
            throw new ArgumentException($"the sparsity bounds [{MinSparsity}, {MaxSparsity}] must hold the target {Target} and stay below 1");
    }

    /// <summary>The settings as ordered pairs, for the store's identity.</summary>
    public IEnumerable<KeyValuePair<string, string>> Identity() =>
    [
        new("target", Inv(Target)), new("step", Inv(Step)), new("offspring", Inv(Offspring)), new("max_switches", Inv(MaxSwitches)),
        new("stages", string.Join(";", Stages.Select(s => $"{s.Windows}x{s.Survivors}"))),
        new("min_sparsity", Inv(MinSparsity)), new("max_sparsity", Inv(MaxSparsity)), new("seed", Inv(Seed)),
        // The start's grid levels (not its exact values, which may differ in the last bits between machines).
        new("start", Start is null ? "uniform" : "levels " + string.Join(",", AllocationSearch.Levels(Start, this))),
    ];

    static string Inv(IFormattable v) => v.ToString(null, CultureInfo.InvariantCulture);
}

/// <summary>One generation's outcome: the parent it ends with and what the screening spent.</summary>
public sealed record AllocationGeneration(int Generation, int[] Levels, double Loss, int Evaluations, long WindowsSpent);

public sealed record AllocationSearchReport(AllocationSearchOptions Options, string Protocol, double[] BestSparsity, double BestLoss,
    IReadOnlyList<AllocationGeneration> History, int ResumedGenerations, bool Stopped)
{
    public int Evaluations => History.Sum(h => h.Evaluations);
    public long WindowsSpent => History.Sum(h => h.WindowsSpent);
}

public static class AllocationSearch
{
    public static double[] Sparsities(int[] levels, AllocationSearchOptions o) => levels.Select(l => o.Target + o.Step * l).ToArray();

    /// <summary>Runs (or resumes, from <paramref name="store"/>, a run store opened with the identity of the fitness and options) the search; stops early, keeping the store consistent, when <paramref name="ct"/> fires.</summary>
    public static AllocationSearchReport Run(IAllocationFitness fitness, AllocationSearchOptions o, RunStore store,
        IProgress<string>? progress = null, CancellationToken ct = default)
    {
        int blocks = fitness.Blocks;
        o.Validate(blocks);
        var history = store.LoadGenerations();
        int resumed = history.Count;
        if (o.Start is { } start && start.Count != blocks)
            throw new ArgumentException($"the start has {start.Count} sparsities, the model {blocks} blocks", nameof(o));
        var parent = history.Count > 0 ? history[^1].Levels : o.Start is null ? new int[blocks] : Levels(o.Start, o);
        var memo = new Dictionary<(string, int), double>();
        int evaluations = 0;
        long windowsSpent = 0;
        double Loss(int[] levels, int windows)
        {
            var key = (string.Join(",", levels), windows);
            if (!memo.TryGetValue(key, out var loss))
            {
                loss = fitness.Loss(Sparsities(levels, o), windows, ct);
                memo[key] = loss;
                evaluations++;
                windowsSpent += windows;
            }
            return loss;
        }
        bool stopped = false;
        for (int g = history.Count + 1; g <= o.Generations; g++)
        {
            if (ct.IsCancellationRequested) { stopped = true; break; }
            int evaluationsBefore = evaluations;
            long windowsBefore = windowsSpent;
            var candidates = new List<int[]> { parent };
            var seen = new HashSet<string> { string.Join(",", parent) };
            var rng = Rng.For(o.Seed, g, 0, 0);
            for (int c = 0; c < o.Offspring * 20 && candidates.Count <= o.Offspring; c++)
            {
                var child = Mutate(parent, o, rng);
                if (child is not null && seen.Add(string.Join(",", child))) candidates.Add(child);
            }
            var survivors = candidates;
            try
            {
                foreach (var (windows, keep) in o.Stages)
                {
                    var next = survivors.Select((c, i) => (c, i, Loss: Loss(c, windows)))
                        .OrderBy(t => double.IsFinite(t.Loss) ? t.Loss : double.PositiveInfinity).ThenBy(t => t.i)
                        .Take(keep).Select(t => t.c).ToList();
                    if (!next.Contains(parent)) next.Add(parent);   // elitism: the parent reaches every stage
                    survivors = next;
                }
            }
            catch (OperationCanceledException) { stopped = true; break; }
            int lastWindows = o.Stages[^1].Windows;
            // The last stage's best; the parent wins ties, so a generation changes the profile only for a gain.
            var best = survivors.OrderBy(c => double.IsFinite(Loss(c, lastWindows)) ? Loss(c, lastWindows) : double.PositiveInfinity)
                .ThenBy(c => ReferenceEquals(c, parent) ? 0 : 1).First();
            parent = best;
            double loss = Loss(best, lastWindows);
            var row = new AllocationGeneration(g, best, loss, evaluations - evaluationsBefore, windowsSpent - windowsBefore);
            store.AddGeneration(row);
            history.Add(row);
            progress?.Report(FormattableString.Invariant(
                $"generation {g}/{o.Generations}: loss {loss:0.#####} on {lastWindows} windows, {row.Evaluations} evaluations ({row.WindowsSpent} windows), profile [{string.Join(", ", Sparsities(best, o).Select(s => s.ToString("0.###", CultureInfo.InvariantCulture)))}]"));
        }
        double bestLoss = history.Count > 0 ? history[^1].Loss : double.NaN;
        return new AllocationSearchReport(o, fitness.Protocol, Sparsities(parent, o), bestLoss, history, resumed, stopped);
    }

    /// <summary>
    /// The grid levels nearest to <paramref name="sparsity"/> within the bounds, summing to zero (the mean stays the
    /// target): rounded, then the levels furthest from their exact value moved one step at a time.
    /// </summary>
    public static int[] Levels(IReadOnlyList<double> sparsity, AllocationSearchOptions o)
    {
        var exact = sparsity.Select(v => (v - o.Target) / o.Step).ToArray();
        int lo = (int)Math.Ceiling((o.MinSparsity - o.Target) / o.Step - 1e-9), hi = (int)Math.Floor((o.MaxSparsity - o.Target) / o.Step + 1e-9);
        var levels = exact.Select(e => Math.Clamp((int)Math.Round(e, MidpointRounding.AwayFromZero), lo, hi)).ToArray();
        for (int sum = levels.Sum(); sum != 0; sum = levels.Sum())
        {
            int dir = sum > 0 ? -1 : 1;
            int pick = Enumerable.Range(0, levels.Length).Where(b => levels[b] + dir >= lo && levels[b] + dir <= hi)
                .OrderByDescending(b => dir * (exact[b] - levels[b])).ThenBy(b => b).First();
            levels[pick] += dir;
        }
        return levels;
    }

    /// <summary>1 to MaxSwitches level switches (one block up a step, another down), within the sparsity bounds; null when none fits.</summary>
    static int[]? Mutate(int[] parent, AllocationSearchOptions o, Rng rng)
    {
        var child = (int[])parent.Clone();
        int switches = 1 + rng.Next(o.MaxSwitches);
        int done = 0;
        for (int attempt = 0; attempt < switches * 10 && done < switches; attempt++)
        {
            int up = rng.Next(child.Length), down = rng.Next(child.Length);
            if (up == down) continue;
            if (o.Target + o.Step * (child[up] + 1) > o.MaxSparsity + 1e-12) continue;
            if (o.Target + o.Step * (child[down] - 1) < o.MinSparsity - 1e-12) continue;
            child[up]++;
            child[down]--;
            done++;
        }
        return done == 0 ? null : child;
    }
}
