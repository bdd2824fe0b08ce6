namespace PrunerZero.Runtime;

/// <summary>
/// A problem with the user's input (model files, data, options). The CLI prints its message as one line
/// on stderr and exits non-zero; anything else escaping is a bug in this project.
/// </summary>
public sealed class PrunerZeroException(string message, Exception? inner = null) : UserError(message, inner);
