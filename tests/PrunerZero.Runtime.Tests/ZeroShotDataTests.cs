using PrunerZero.Runtime.ZeroShot;

namespace PrunerZero.Runtime.Tests;

/// <summary>Each task reader on the shipped file: row count, and the first item's prompt, options and gold label.</summary>
public sealed class ZeroShotDataTests : TorchGuarded
{
    static readonly string DataDir = FindData();

    static string FindData()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
        {
            string p = Path.Combine(d.FullName, "data", "zeroshot");
            if (Directory.Exists(p)) return p;
        }
        throw new DirectoryNotFoundException("data/zeroshot not found above the test binaries");
    }

    static ZeroShotTask Load(string name) => ZeroShotTasks.Load(DataDir, [name]).Single();

    static void Options(ZeroShotItem item, string context, params string[] choices)
    {
        Assert.Equal(choices.Length, item.Choices.Count);
        for (int i = 0; i < choices.Length; i++)
        {
            Assert.Equal(context, item.Choices[i].Context);
            Assert.Equal(" " + choices[i], item.Choices[i].Continuation);
            Assert.Equal(choices[i], item.Choices[i].Text);
        }
    }

    [Fact]
    public void BoolQ()
    {
        var t = Load("boolq");
        Assert.Equal(3270, t.Items.Count);
        Assert.False(t.ReportsAccNorm);
        var first = t.Items[0];
        string ctx = first.Choices[0].Context;
        Assert.StartsWith("Ethanol fuel -- All biomass goes through at least some of these steps", ctx);
        Assert.EndsWith("producing gasoline.\nQuestion: does ethanol take more energy make that produces?\nAnswer:", ctx);
        Options(first, ctx, "no", "yes");
        Assert.Equal(0, first.Gold);   // label false
        Assert.Equal(2033, t.Items.Count(i => i.Gold == 1));
    }

    [Fact]
    public void Rte()
    {
        var t = Load("rte");
        Assert.Equal(277, t.Items.Count);
        Options(t.Items[0], "Dana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer at age 44, according to the Christopher Reeve Foundation.\nQuestion: Christopher Reeve had an accident. True or False?\nAnswer:", "True", "False");
        Assert.Equal(1, t.Items[0].Gold);   // not_entailment = False
        Assert.Equal(0, t.Items[1].Gold);   // entailment = True
        Assert.Equal(146, t.Items.Count(i => i.Gold == 0));
    }

    [Fact]
    public void ArcEasy()
    {
        var t = Load("arc_easy");
        Assert.Equal(2376, t.Items.Count);
        Assert.True(t.ReportsAccNorm);
        Options(t.Items[0], "Question: Which statement best explains why photosynthesis is the foundation of most food webs?\nAnswer:",
            "Sunlight is the source of energy for nearly all ecosystems.", "Most ecosystems are found on land instead of in water.",
            "Carbon dioxide is more available than other gases.", "The producers in all ecosystems are plants.");
        Assert.Equal(0, t.Items[0].Gold);
        Assert.Equal(7, t.Items.Count(i => i.Choices.Count == 3));
        Assert.Equal(4, t.Items.Count(i => i.Choices.Count == 5));
    }

    [Fact]
    public void ArcChallenge()
    {
        var t = Load("arc_challenge");
        Assert.Equal(1172, t.Items.Count);
        Options(t.Items[0], "Question: An astronomer observes that a planet rotates faster after a meteorite impact. Which is the most likely effect of this increase in rotation?\nAnswer:",
            "Planetary density will decrease.", "Planetary years will become longer.", "Planetary days will become shorter.", "Planetary gravity will become stronger.");
        Assert.Equal(2, t.Items[0].Gold);   // C
    }

    [Fact]
    public void WinoGrande()
    {
        var t = Load("winogrande");
        Assert.Equal(1267, t.Items.Count);
        Assert.False(t.ReportsAccNorm);
        var first = t.Items[0];
        Assert.Equal("Sarah was a much better surgeon than Maria so Sarah", first.Choices[0].Context);
        Assert.Equal("Sarah was a much better surgeon than Maria so Maria", first.Choices[1].Context);
        Assert.All(first.Choices, c => Assert.Equal(" always got the easier cases.", c.Continuation));
        Assert.Equal(1, first.Gold);   // answer "2"
        Assert.Equal(639, t.Items.Count(i => i.Gold == 1));
    }

    [Fact]
    public void OpenBookQA()
    {
        var t = Load("openbookqa");
        Assert.Equal(500, t.Items.Count);
        Assert.True(t.ReportsAccNorm);
        Options(t.Items[0], "A person wants to start saving money so that they can afford a nice vacation at the end of the year. After looking over their budget and expenses, they decide the best way to save money is to",
            "make more phone calls", "quit eating lunch out", "buy less with monopoly money", "have lunch with friends");
        Assert.Equal(1, t.Items[0].Gold);   // B
    }

    [Fact]
    public void HellaSwagDerivedIsLabelledAsDerived()
    {
        var t = Load("hellaswag");
        Assert.Equal(10042, t.Items.Count);
        Assert.True(t.Derived);
        Assert.True(t.ReportsAccNorm);
        Assert.Equal("hellaswag (derived, not official)", t.Label);
        Options(t.Items[0], "Roof shingle removal: A man is sitting on a roof. he",
            "is using wrap to wrap a pair of skis.", "is ripping level tiles off.", "is holding a rubik's cube.", "starts pulling up roofing on a roof.");
        Assert.Equal(3, t.Items[0].Gold);
        Assert.Equal([2515, 2485, 2584, 2458], Enumerable.Range(0, 4).Select(g => t.Items.Count(i => i.Gold == g)));
        // The harness's preprocess removes the "[...]" spans the derived text kept.
        Assert.DoesNotContain(t.Items, i => i.Choices.Any(c => c.Context.Contains("[www.kiddio.org]") || c.Continuation.Contains("[www.kiddio.org]")));
    }

    [Fact]
    public void AllTasksLoadByDefaultName()
    {
        var all = ZeroShotTasks.Load(DataDir, ZeroShotTasks.All);
        Assert.Equal(ZeroShotTasks.All, all.Select(t => t.Name));
        Assert.Equal(["arc_challenge", "arc_easy", "hellaswag", "openbookqa"], all.Where(t => t.ReportsAccNorm).Select(t => t.Name).Order());
    }
}
