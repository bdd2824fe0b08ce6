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
        for (int i = 0; i < 2000; i++)
        {
            var rng = Rng.For(9, i, 0, 0);
            var p1 = Trees.RampedHalfAndHalf(rng, i, 3, 5);
            var p2 = Trees.RampedHalfAndHalf(rng, i + 1, 3, 5);
            var m = Trees.Mutate(rng, p1, 5);
            Assert.True(Trees.Height(m) <= 5, $"mutation produced height {Trees.Height(m)}: {m}");
            var c = Trees.Crossover(rng, p1, p2);
            Assert.True(Trees.Height(c) <= Trees.Height(p1) + Trees.Height(p2), "crossover child taller than possible");
        }
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
