"""gitmoor.source: git by commit. The only package that runs git.

Resolve an Application's ``targetRevision`` to a commit, then get the tree of
that commit from a cache that fetches each repository and commit once::

    from gitmoor.source import checkout, match_credentials, resolve

    creds = match_credentials(app.repo_url, all_creds)
    commit = resolve(app.repo_url, app.target_revision, creds)
    tree = checkout(app.repo_url, commit, creds)        # read-only, no .git

Whether a pushed ref may move what a ``targetRevision`` selects, without any
git request, is :func:`revision_touched` (the webhook handler's rule, kept
beside the resolver so that both read a revision alike).

Errors (from :mod:`gitmoor.model`), each naming the URL without credentials:

    UserInputError   a refused URL or revision (userinfo in the URL, file:// outside
                     the allowed roots); a revision, tag or commit not found; a tree
                     with a symlink out of the repository, or larger than the cache
    PermanentError   credentials or host key refused, TLS verification failed
    RetryableError   server unreachable, repository missing, timeout
"""

from gitmoor.source.cache import (
    ENV_CACHE_DIR,
    ENV_CACHE_MAX_BYTES,
    CacheStats,
    GitCache,
    checkout,
    checkout_async,
    count_commits_async,
    default_cache_dir,
    get_cache,
    resolve,
    resolve_async,
    resolve_tagged_async,
)
from gitmoor.source.creds import RepoCredentials, match_credentials
from gitmoor.source.git import check_branch_name
from gitmoor.source.match import RefKind, revision_touched, split_ref
from gitmoor.source.policy import (
    ENV_ALLOW_FILE_REPOS,
    allow_file_repos,
    allowed_file_roots,
    check_fetchable,
    check_repo_url,
)
from gitmoor.source.revisions import SemverConstraint, parse_ls_remote, select_commit
from gitmoor.source.urls import (
    RepoURL,
    normalize_repo_url,
    parse_repo_url,
    redact_url,
    validate_revision,
)
from gitmoor.source.worktree import origin_url

__all__ = [
    "ENV_ALLOW_FILE_REPOS",
    "ENV_CACHE_DIR",
    "ENV_CACHE_MAX_BYTES",
    "CacheStats",
    "GitCache",
    "RefKind",
    "RepoCredentials",
    "RepoURL",
    "SemverConstraint",
    "allow_file_repos",
    "allowed_file_roots",
    "check_branch_name",
    "check_fetchable",
    "check_repo_url",
    "checkout",
    "checkout_async",
    "count_commits_async",
    "default_cache_dir",
    "get_cache",
    "match_credentials",
    "normalize_repo_url",
    "origin_url",
    "parse_ls_remote",
    "parse_repo_url",
    "redact_url",
    "resolve",
    "resolve_async",
    "resolve_tagged_async",
    "revision_touched",
    "select_commit",
    "split_ref",
    "validate_revision",
]
