"""The app starts on the seeded database and every main page renders for every kind of user."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.acceptance.conftest import Client

PAGES = [
    "/",
    "/?tab=mine",
    "/?tab=overdue",
    "/processes",
    "/instances",
    "/deadlines",
    "/reports/overdue",
    "/members",
    "/notifications",
    "/profile",
]


@pytest.mark.parametrize("user", ["ministry", "coordinator", "admin", "expert", "troitsk-go"])
def test_every_page_renders_for_every_role(login: Callable[[str], Client], user: str) -> None:
    browser = login(user)
    for page in PAGES:
        response = browser.get(page)
        assert response.status_code == 200, (page, response.get_data(as_text=True)[:300])
        assert "text/html" in response.content_type
        assert 'lang="ru"' in response.get_data(as_text=True)


def test_anonymous_pages_redirect_to_login_and_api_answers_401(client: Client) -> None:
    page = client.get("/instances")
    assert page.status_code == 302
    assert page.headers["Location"].startswith("/login?next=")
    api = client.get("/api/v1/tasks")
    assert api.status_code == 401
    assert api.content_type == "application/problem+json"
    assert api.json["code"] == "not_authenticated"
