using PrunerZero.Kernels;
using PrunerZero.Search;

namespace PrunerZero.Search.Tests;

public class TreesTests
{
    [Fact]
    public void Height_is_depth_minus_one()
    {
        Assert.Equal(0, Trees.Height(Expr.W));
        Assert.Equal(1, Trees.Height(MetricParser.Parse("sqr(W)")));
        Assert.Equal(2, Trees.Height(Metrics.PrunerZero));
    }

    [Fact]
    public void Ramped_half_and_half_stays_within_bounds_and_covers_them()
    {
        var heights = new HashSet<int>();
        int full = 0;
        for (int slot = 0; slot < 300; slot++)
        {
            var e = Trees.RampedHalfAndHalf(Rng.For(3, 0, slot, 0), slot, 3, 5);
            int h = Trees.Height(e);
            Assert.InRange(h, 3, 5);
            heights.Add(h);
            // full trees: every terminal at the same level
            var leaves = e.Preorder().Where(n => n.Node.IsTerminal).Select(n => n.Level).Distinct().Count();
            if (leaves == 1) full++;
        }
        Assert.Equal([3, 4, 5], heights.Order());
        Assert.True(full >= 150, $"expected at least half full trees, got {full}");
    }

    [Fact]
    public void Full_trees_use_every_primitive()
    {
        var seen = new HashSet<Op>();
        for (int i = 0; i < 200; i++)
            foreach (var n in Trees.Full(Rng.For(1, 0, i, 0), 4).Preorder()) seen.Add(n.Node.Op);
        Assert.Equal(Ops.All.Count, seen.Count);
    }

    [Fact]
    public void Mutation_never_exceeds_max_height_and_crossover_is_filtered_by_bounds()
    {
        int tooTall = 0;
        for (int i = 0; i < 2000; i++)
        {
            var rng = Rng.For(9, i, 0, 0);
            var p1 = Trees.RampedHalfAndHalf(rng, i, 3, 5);
            var p2 = Trees.RampedHalfAndHalf(rng, i + 1, 3, 5);
            var m = Trees.Mutate(rng, p1, 5);
            Assert.True(Trees.Height(m) <= 5, $"mutation produced height {Trees.Height(m)}: {m}");

            // Crossover is exactly "subtree i of p1 replaced by subtree j of p2", i and j the next two draws.
            var r1 = Rng.For(9, i, 1, 0);
            var r2 = Rng.For(9, i, 1, 0);
            var c = Trees.Crossover(r1, p1, p2);
            int at = r2.Next(p1.Size), from = r2.Next(p2.Size);
            Assert.Equal(p1.ReplaceAt(at, p2.NodeAt(from)), c);
            int level = p1.Preorder()[at].Level;
            Assert.Equal(Math.Max(HeightOutside(p1, at), level + Trees.Height(p2.NodeAt(from))), Trees.Height(c));
            // Children outside the bounds exist (so the filter matters) and InBounds rejects exactly those.
            bool inBounds = Trees.Height(c) is >= 3 and <= 5;
            Assert.Equal(inBounds, Trees.InBounds(c, 3, 5));
            if (Trees.Height(c) > 5) tooTall++;
        }
        Assert.True(tooTall > 0, "no crossover child was taller than the bound: the filter is never exercised");
    }

    /// <summary>Height of the tree with the subtree at preorder index <paramref name="at"/> cut off (its path still reaches it).</summary>
    static int HeightOutside(Expr e, int at)
    {
        var nodes = e.Preorder();
        var cut = nodes[at];
        int end = at + cut.Node.Size;
        return nodes.Where(n => (n.Index < at || n.Index >= end) && n.Node.IsTerminal).Select(n => n.Level).DefaultIfEmpty(cut.Level).Max();
    }

    [Fact]
    public void Rng_streams_are_deterministic_and_distinct()
    {
        Assert.Equal(Rng.For(1, 2, 3, 4).NextULong(), Rng.For(1, 2, 3, 4).NextULong());
        Assert.NotEqual(Rng.For(1, 2, 3, 4).NextULong(), Rng.For(1, 2, 3, 5).NextULong());
        Assert.NotEqual(Rng.For(1, 2, 3, 4).NextULong(), Rng.For(2, 2, 3, 4).NextULong());
    }

    [Fact]
    public void Json_round_trips_a_tree()
    {
        var e = MetricParser.Parse("mul(sqr(W), mms(pdiv(G, X)))");
        var json = ExprJson.ToJson(e).ToJsonString();
        Assert.Equal(e, ExprJson.FromJson(System.Text.Json.Nodes.JsonNode.Parse(json)));
    }
}
