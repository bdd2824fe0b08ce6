using PrunerZero.Runtime.Tests;

namespace PrunerZero.Cli.Tests;

/// <summary>A tokenizer file that is not a SentencePiece model or a valid tokenizer.json: one line naming the file, exit 1.</summary>
public class TokenizerBadInputTests : TorchGuarded
{
    static void AssertOneLine(string dir, string expected)
    {
        string wiki = Path.Combine(TestCheckpoints.TempDir("wiki"), "wiki.test.raw");
        File.WriteAllText(wiki, string.Concat(Enumerable.Repeat(" = Heading = \n \n The quick brown fox . \n", 20)));
        CliRunner.UserError(expected, "eval", "--model", dir, "--dataset", wiki);
    }

    [Fact]
    public void GarbageSentencePieceModel()
    {
        string d = TestCheckpoints.Write(TestCheckpoints.Config());
        string model = Path.Combine(d, "tokenizer.model");
        File.WriteAllBytes(model, [0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x01, 0x02]);
        AssertOneLine(d, model + ": not a SentencePiece model");
    }

    [Fact]
    public void TokenizerJsonThatTokenizersRefuses()
    {
        string d = TestCheckpoints.Write(TestCheckpoints.Config());
        string json = Path.Combine(d, "tokenizer.json");
        File.WriteAllText(json, """{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "added_tokens": 3}""");
        AssertOneLine(d, json + ": not a valid tokenizer.json");
    }
}
