"""Who the registry must refuse (issue 9, "Authorization"; operator-facts §9, §12.10).

OpenShift's registry authorizes every repository action with a SelfSubjectAccessReview made with the
caller's own token (image-registry `auth.go`): pull = `get`, push = `update` on `imagestreams/layers`
in the repository's namespace; anonymous callers are the anonymous user; a refusal is a 401 with
`WWW-Authenticate: Basic realm=openshift,error="access denied"` (or a 403), which the client reads as
`AccessDenied`. The procedure's note: "if you use shared storage, review its security settings to
prevent outside access"; these checks are the registry's side of it:

- a push by a ServiceAccount that holds only `system:image-puller` in the namespace is refused (it can
  pull, so the refusal is about the missing push role, not a broken identity);
- an anonymous push is refused;
- an anonymous pull of an existing image is refused;
- a pull by a ServiceAccount without rights in the namespace (one of another namespace of the run) is
  refused.

One backend is enough (`ONE_BACKEND`: the first one selected): the registry decides access in its auth
layer, before any storage driver is involved, and the decision reads nothing from the storage; running
the same checks on every backend would only repeat rollouts (and control-plane rollouts, issue 7 item 4).
"""
from __future__ import annotations

import pytest

from fixtures.registry import namespace_for_run, push_fresh_image
from utilities import registry_access as access
from utilities import registry_steps as steps
from utilities.images import build_random_image
from utilities.labels import labels as labels_for
from utilities.registry_client import AccessDenied, RegistryError
from utilities.reports import RUN_ID

pytestmark = [pytest.mark.destructive]
ONE_BACKEND = True


@pytest.fixture(scope="module")
def pushed(cluster, registry_backend, backend_route, test_namespace):
    """An image pushed by the run's builder ServiceAccount (the positive control of every refusal)."""
    return push_fresh_image(cluster, backend_route, test_namespace, name="access")


@pytest.fixture(scope="module")
def puller_only(cluster, test_namespace, pytestconfig):
    """A ServiceAccount of the test namespace with system:image-puller only (no push role)."""
    with access.service_account(cluster, test_namespace, "registry-conformance-puller-only",
                                [access.IMAGE_PULLER], labels_for(pytestconfig.stash[RUN_ID])) as who:
        yield who


@pytest.fixture(scope="module")
def outsider(cluster, test_namespace, pytestconfig):
    """A ServiceAccount of another namespace of the run, with no rights in the test namespace."""
    labels = labels_for(pytestconfig.stash[RUN_ID])
    with namespace_for_run(cluster, pytestconfig, "registry-conformance-other-", labels, outsider=True) as other:
        with access.service_account(cluster, other, "registry-conformance-outsider", [], labels) as who:
            yield who


def _must_refuse(action, what: str, who: str, why: str) -> None:
    """Run `action()`: the registry must answer access denied (AccessDenied). Fails naming what was
    tried, by whom, what came instead, and why it must be refused."""
    try:
        action()
    except AccessDenied:
        return
    except RegistryError as e:
        pytest.fail(f"{what} by {who}: expected access denied (401 Basic realm=openshift or 403), got {e}")
    pytest.fail(f"the registry accepted {what} by {who}; it must refuse it ({why})")


def test_push_without_push_role_is_refused(cluster, backend_route, pushed, puller_only):
    with steps.registry_client(cluster, backend_route, token=puller_only.token()) as client:
        try:
            client.pull_image(pushed.repository, pushed.tag, expected_digest=pushed.digest)
        except RegistryError as e:
            pytest.fail(f"{puller_only.describe()} cannot pull {pushed.repository}:{pushed.tag}, so the push "
                        f"refusal below would prove nothing: {e}")
        repo = f"{pushed.repository.split('/')[0]}/pushed-by-puller"
        _must_refuse(lambda: client.push_image(repo, "t", build_random_image()), f"a push to {repo}",
                     puller_only.describe(),
                     "system:image-puller grants get on imagestreams/layers only; pushing needs update, "
                     "i.e. system:image-builder or system:image-pusher")


def test_anonymous_push_is_refused(cluster, backend_route, pushed):
    repo = f"{pushed.repository.split('/')[0]}/pushed-anonymously"
    with steps.registry_client(cluster, backend_route, token=None) as client:
        _must_refuse(lambda: client.push_image(repo, "t", build_random_image()), f"a push to {repo}",
                     "an anonymous client (no credentials)",
                     "the anonymous user holds no update on imagestreams/layers")


def test_anonymous_pull_is_refused(cluster, backend_route, pushed):
    with steps.registry_client(cluster, backend_route, token=None) as client:
        _must_refuse(lambda: client.get_manifest(pushed.repository, pushed.tag),
                     f"a pull of {pushed.repository}:{pushed.tag}", "an anonymous client (no credentials)",
                     f"the anonymous user holds no get on imagestreams/layers in {pushed.repository.split('/')[0]}")


def test_pull_without_rights_is_refused(cluster, backend_route, pushed, outsider):
    with steps.registry_client(cluster, backend_route, token=outsider.token()) as client:
        _must_refuse(lambda: client.get_manifest(pushed.repository, pushed.tag),
                     f"a pull of {pushed.repository}:{pushed.tag}", outsider.describe(),
                     f"it holds no get on imagestreams/layers in {pushed.repository.split('/')[0]}")
