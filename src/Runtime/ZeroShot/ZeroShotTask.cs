namespace PrunerZero.Runtime.ZeroShot;

/// <summary>
/// One answer option of a multiple-choice item, as the harness's loglikelihood request: the score is
/// log P(Continuation | Context). <see cref="Text"/> is the harness's doc_to_choice entry (no leading space);
/// its length in Unicode code points (Python's len) divides the score for acc_norm.
/// </summary>
public sealed record ZeroShotChoice(string Context, string Continuation, string Text);

/// <summary>One item: its options and the index of the correct one.</summary>
public sealed record ZeroShotItem(string Id, IReadOnlyList<ZeroShotChoice> Choices, int Gold);

/// <summary>A loaded task: its items in file order (the harness's --limit takes the first N).</summary>
public sealed class ZeroShotTask
{
    /// <summary>Harness task name: boolq, rte, winogrande, arc_easy, arc_challenge, openbookqa, hellaswag.</summary>
    public required string Name { get; init; }

    /// <summary>Name as reported: the task name, or "hellaswag (derived, not official)" for the derived text file.</summary>
    public required string Label { get; init; }

    /// <summary>True where the harness reports acc_norm (ARC, OpenBookQA, HellaSwag); BoolQ, RTE, WinoGrande report acc only.</summary>
    public required bool ReportsAccNorm { get; init; }

    /// <summary>True when the items come from a derived, non-official rendering of the data.</summary>
    public bool Derived { get; init; }

    /// <summary>The file the items were read from.</summary>
    public required string Source { get; init; }

    public required IReadOnlyList<ZeroShotItem> Items { get; init; }
}
