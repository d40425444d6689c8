"""The ``@job`` decorator: ``dramatiq.actor`` plus our options.

>>> from broker_jobs import job
>>> @job(queue="etl", priority="high", time_limit=120, rate_limit="10/m")
... def refresh(source: str, limit: int = 100) -> dict:
...     return {"fetched": limit}
>>> refresh.send("github", limit=5)
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, overload

import dramatiq
from dramatiq.middleware import CurrentMessage
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from . import registry
from .errors import ArgumentsInvalid, PermanentJobError, SkipJob
from .priorities import actor_priority, parse_priority
from .protocol import BJ_ERROR, BJ_REPORT

F = TypeVar("F", bound=Callable[..., Any])


def _model_from_signature(fn: Callable[..., Any]) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for name, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = Any if param.annotation is inspect.Parameter.empty else param.annotation
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[name] = (annotation, default)
    config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    return create_model(f"{fn.__name__}_arguments", __config__=config, **fields)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        parts.append(f"argument {where!r}: {err['msg']}")
    return "; ".join(parts)


# inspect.signature() rebuilt on every run was ~3% of a no-op job's worker CPU (benchmarks/README.md).
_signature = functools.lru_cache(maxsize=1024)(inspect.signature)


@functools.lru_cache(maxsize=1024)
def _plain_parameters(fn: Callable[..., Any]) -> tuple[tuple[str, ...], frozenset[str]] | None:
    """(names, required names) when every parameter may be passed by position or keyword."""
    parameters = _signature(fn).parameters.values()
    if any(p.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD for p in parameters):
        return None
    names = tuple(p.name for p in parameters)
    return names, frozenset(p.name for p in parameters if p.default is inspect.Parameter.empty)


def validated_call(
    fn: Callable[..., Any], model: type[BaseModel], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``args``/``kwargs`` validated against ``fn``'s signature and ``model``, ready to call ``fn``.

    Raises:
      ArgumentsInvalid: naming the first bad argument.
    """
    plain = _plain_parameters(fn)
    if plain is not None:
        # The common case without building inspect.BoundArguments (a few µs per run);
        # anything unusual goes through bind() below for its exact error message.
        names, required = plain
        if len(args) <= len(names):
            given = dict(zip(names, args, strict=False))
            if given.keys().isdisjoint(kwargs) and kwargs.keys() <= set(names):
                given.update(kwargs)
                if required <= given.keys():
                    try:
                        validated = model.model_validate(given)
                    except ValidationError as exc:
                        raise ArgumentsInvalid(_describe(exc)) from None
                    # A model keeps its fields' values in __dict__ (asking the class for its
                    # model_fields cost more than the validation itself).
                    values = validated.__dict__
                    return (), {name: values.get(name, value) for name, value in given.items()}
    bound = validate_arguments(fn, model, args, kwargs)
    return bound.args, bound.kwargs


def validate_arguments(
    fn: Callable[..., Any], model: type[BaseModel], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> inspect.BoundArguments:
    """Bind and validate ``args``/``kwargs`` against ``fn``'s signature and ``model``.

    Raises:
      ArgumentsInvalid: naming the first bad argument.
    """
    signature = _signature(fn)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise ArgumentsInvalid(str(exc)) from None
    try:
        validated = model.model_validate(dict(bound.arguments))
    except ValidationError as exc:
        raise ArgumentsInvalid(_describe(exc)) from None
    for name in bound.arguments:
        if name in type(validated).model_fields:
            bound.arguments[name] = getattr(validated, name)
    return bound


@overload
def job(fn: F) -> dramatiq.Actor[Any, Any]: ...


@overload
def job(
    fn: None = None,
    *,
    name: str | None = None,
    queue: str = "default",
    priority: str | int = "medium",
    time_limit: float | None = None,
    max_retries: int | None = None,
    min_backoff: float | None = None,
    rate_limit: str | None = None,
    args_model: type[BaseModel] | None = None,
    throws: tuple[type[BaseException], ...] = (),
    description: str | None = None,
    broker: dramatiq.Broker | None = None,
    **options: Any,
) -> Callable[[F], dramatiq.Actor[Any, Any]]: ...


def job(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    queue: str = "default",
    priority: str | int = "medium",
    time_limit: float | None = None,
    max_retries: int | None = None,
    min_backoff: float | None = None,
    rate_limit: str | None = None,
    args_model: type[BaseModel] | None = None,
    throws: tuple[type[BaseException], ...] = (),
    description: str | None = None,
    broker: dramatiq.Broker | None = None,
    **options: Any,
) -> Any:
    """Declare a job: a Dramatiq actor with validated arguments and our options.

    Parameters:
      name: Actor name (default: the function's name).
      queue: ``etl``, ``sync``, ``maintenance``, ``default`` or your own.
      priority: ``high``, ``medium``, ``low`` (or 1, 2, 3), overridable per send
        with ``send_with_options(priority=...)``.
      time_limit: Seconds before the job is interrupted (default ``JOB_TIMEOUT``).
      max_retries: Attempts after the first (default ``MAX_RETRIES``).
      min_backoff: First retry delay in seconds (default 2, doubling).
      rate_limit: ``"10/m"``: over the limit, runs are delayed, never failed.
      args_model: A pydantic model for the arguments (default: built from the
        function's signature and annotations).
      throws: Exceptions that fail the job at once, without retry.
      description: One line for listings (default: the docstring's first line).
      broker: The broker to declare on (default: the process's broker).
      **options: Any other Dramatiq actor option.

    Returns:
      The Dramatiq actor; ``.send()`` enqueues it.
    """

    def decorate(func: Callable[..., Any]) -> dramatiq.Actor[Any, Any]:
        from .broker import get_broker  # deferred: pika, SQLAlchemy, Redis; validate_arguments needs none

        level = parse_priority(priority)
        # Built at the first call or check, not here: declaring every job (each `broker-jobs` command) stays light.
        model_of = functools.cache(lambda: args_model or _model_from_signature(func))

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> None:
            call_args, call_kwargs = validated_call(func, model_of(), args, kwargs)
            message = CurrentMessage.get_current_message()
            try:
                result = func(*call_args, **call_kwargs)
            except SkipJob as skip:
                if message is not None:
                    message.options[BJ_ERROR] = str(skip) or "skipped"
                raise
            if isinstance(result, dict) and message is not None:
                message.options[BJ_REPORT] = result

        actor_options: dict[str, Any] = dict(options)
        actor_options["job_priority"] = level.label
        actor_options["throws"] = (PermanentJobError, *throws)
        if time_limit is not None:
            actor_options["time_limit"] = int(time_limit * 1000)
        if max_retries is not None:
            actor_options["max_retries"] = max_retries
        if min_backoff is not None:
            actor_options["min_backoff"] = int(min_backoff * 1000)
        if rate_limit is not None:
            from .middleware.rate_limit import parse_rate  # deferred: with get_broker above, pika and SQLAlchemy

            parse_rate(rate_limit)
            actor_options["rate_limit"] = rate_limit
        actor: dramatiq.Actor[Any, Any] = dramatiq.actor(  # type: ignore[call-overload]
            run,
            actor_name=name or func.__name__,
            queue_name=queue,
            priority=actor_priority(level),
            broker=broker or get_broker(),
            **actor_options,
        )
        text = description or next(iter((func.__doc__ or "").strip().splitlines()), "")
        registry.register(
            registry.JobSpec(
                name=actor.actor_name, queue=queue, priority=level, description=text,
                actor=actor, rate_limit=rate_limit, fn=func, model_of=model_of,
            )
        )
        return actor

    if fn is not None:
        return decorate(fn)
    return decorate
