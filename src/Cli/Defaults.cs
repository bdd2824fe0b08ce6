using PrunerZero.Runtime;

namespace PrunerZero.Cli;

/// <summary>Where the embedded default model and data live: found upward from the working directory or the binary.</summary>
public static class Defaults
{
    public const string ModelName = "models/pz-llama-tiny";
    public const string WikiTest = "data/wikitext-2-raw/wiki.test.raw";
    public const string Calibration = "data/c4/c4-train.00000-of-01024.first1000.jsonl";
    /// <summary>
    /// Windows of the search's screen fitness (search, worker, bench). 128: on the shipped model it ranks 56 search
    /// candidates like the full protocol with Spearman 0.980 against 0.965 at 32 (paired bootstrap of the difference
    /// 95% [0.002, 0.041]), src/Search/SEARCH.md, "Screen fidelity".
    /// </summary>
    public const int ScreenWindows = 128;

    public static string Find(string relative)
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var d = new DirectoryInfo(start); d != null; d = d.Parent)
            {
                string p = Path.Combine(d.FullName, relative);
                if (File.Exists(p) || Directory.Exists(p)) return p;
            }
        }
        throw new PrunerZeroException($"cannot find the embedded default '{relative}' above the working directory or the program; pass the path explicitly");
    }

    /// <summary>`wikitext2` means the shipped WikiText-2 test split; anything else is a path.</summary>
    public static string Dataset(string? value) => value is null or "wikitext2" ? Find(WikiTest) : value;

    public static string Model(string? value) => value ?? Find(ModelName);
}
