"""All test factories. Roles come from config.yaml (see the `roles` fixture)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import factory
from django.utils import timezone

from core.models import Invite, Product, Role, User
from core.services.invites import invite_code_digest


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"member{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.test")
    role = factory.LazyFunction(lambda: Role.objects.get(key="user"))
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery")

    @factory.post_generation
    def _save(obj: User, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create:
            obj.is_staff = bool(obj.role and obj.role.staff)
            obj.save()


class ProductFactory(factory.django.DjangoModelFactory[Product]):
    class Meta:
        model = Product

    name = factory.Sequence(lambda n: f"Product {n}")
    slug = factory.Sequence(lambda n: f"product-{n}")


class InviteFactory(factory.django.DjangoModelFactory[Invite]):
    """A usable invite with a known code: INV-TEST0-0000N-..."""

    class Meta:
        model = Invite

    created_by = factory.SubFactory(UserFactory)
    code = factory.Sequence(lambda n: f"INV-{n:020d}")
    code_digest = factory.LazyAttribute(lambda o: invite_code_digest(o.code[4:]))
    created_at = factory.LazyFunction(timezone.now)
    expires_at = factory.LazyAttribute(lambda o: o.created_at + timedelta(days=7))
