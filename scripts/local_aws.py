"""Create AWS fixtures for linkplan's tests on a local moto server.

Run it with the venv's interpreter (.venv/bin/python, made by scripts/local-aws install).
Every subcommand prints one JSON object on stdout. The endpoint comes from --endpoint-url
or AWS_ENDPOINT_URL, and any endpoint whose host is not loopback is rejected with exit
code 2, so these fixtures never send a request to real AWS.
"""

from __future__ import annotations

import argparse
import ipaddress
import itertools
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, NoReturn

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

# Trend Micro Workload Security publishes one endpoint service per host name.
PROVIDER_HOSTS = ("relay", "agents", "dsmim", "app")
PROVIDER_CIDR = "10.250.0.0/16"
PROVIDER_VPC_NAME = "linkplan-provider"
# The zones that the us-east-1 services run in. Other regions default to all their zones.
PROVIDER_AZ_IDS = {"us-east-1": ("use1-az1", "use1-az2", "use1-az4")}

# Tags every resource made here, so reruns find the provider side instead of adding one.
FIXTURE_TAG_KEY = "linkplan-fixture"

# botocore and urllib send requests through these proxies, which would take a loopback
# endpoint to another host.
PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)

EXIT_FAILURE = 1
EXIT_USAGE = 2


class FixtureError(Exception):
    """A fixture request that failed, with a message for the user."""


def reject(message: str) -> NoReturn:
    print(f"local_aws.py: {message}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


def loopback_endpoint(explicit: str | None) -> str:
    """Return the endpoint URL without a trailing slash, or exit 2 unless its host is loopback."""
    endpoint = explicit or os.environ.get("AWS_ENDPOINT_URL", "")
    if not endpoint:
        reject(
            "missing endpoint: pass --endpoint-url or set AWS_ENDPOINT_URL "
            "(scripts/local-aws start prints one)"
        )
    try:
        parts = urllib.parse.urlsplit(endpoint)
        host = parts.hostname
        _ = parts.port  # raises ValueError for a port that is not a number from 0 to 65535
    except ValueError as error:
        reject(f"invalid endpoint URL {endpoint!r}: {error}")
    if parts.scheme not in ("http", "https"):
        reject(f"invalid endpoint URL {endpoint!r}: the scheme must be http or https")
    if host not in LOOPBACK_HOSTS:
        reject(
            f"rejected endpoint {endpoint!r}: its host must be one of "
            f"{', '.join(sorted(LOOPBACK_HOSTS))}, because these fixtures only run "
            "against a local moto server"
        )
    return endpoint.rstrip("/")


def isolate_environment() -> None:
    """Keep the developer's AWS profiles, proxies and instance metadata out of every request."""
    for name in PROXY_VARIABLES:
        os.environ.pop(name, None)
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_DEFAULT_PROFILE", None)
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    if not (os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY")):
        os.environ["AWS_ACCESS_KEY_ID"] = "testing"
        os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
        os.environ.pop("AWS_SESSION_TOKEN", None)


class Aws:
    """boto3 clients for one region, all pointed at the loopback endpoint."""

    def __init__(self, endpoint: str, region: str) -> None:
        try:
            import boto3
            import botocore.config
        except ImportError:
            raise FixtureError(
                "boto3 is missing: run scripts/local-aws install and run this script "
                "with .venv/bin/python"
            ) from None
        # Explicit keys bypass botocore's credential chain, which could otherwise call STS
        # or SSO on real AWS for a role or SSO profile.
        session = boto3.Session(
            aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=os.environ.get("AWS_SESSION_TOKEN"),
            region_name=region,
        )
        config = botocore.config.Config(retries={"max_attempts": 2, "mode": "standard"})
        self.region = region
        self.ec2 = session.client("ec2", endpoint_url=endpoint, config=config)
        self.elbv2 = session.client("elbv2", endpoint_url=endpoint, config=config)


def call(operation: str, function: Any, **params: Any) -> dict[str, Any]:
    """Call one AWS API operation and turn its errors into a FixtureError naming the operation."""
    import botocore.exceptions

    try:
        return function(**params)
    except botocore.exceptions.ClientError as error:
        raise FixtureError(f"{operation} failed: {error}") from None
    except botocore.exceptions.BotoCoreError as error:
        raise FixtureError(
            f"{operation} failed: {error} (is the moto server running? "
            "scripts/local-aws status shows it)"
        ) from None


def tag_specification(resource_type: str, tags: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "ResourceType": resource_type,
            "Tags": [{"Key": key, "Value": value} for key, value in tags.items()],
        }
    ]


def tags_of(resource: dict[str, Any]) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in resource.get("Tags", [])}


def zone_names_by_id(aws: Aws) -> dict[str, str]:
    response = call("DescribeAvailabilityZones", aws.ec2.describe_availability_zones)
    return {zone["ZoneId"]: zone["ZoneName"] for zone in response["AvailabilityZones"]}


def resolve_az_ids(aws: Aws, az_ids: list[str]) -> list[tuple[str, str]]:
    """Return (zone id, zone name) pairs, or raise FixtureError for an id the region lacks.

    moto's DescribeAvailabilityZones returns an empty list for an unknown ZoneIds entry
    instead of an error, so this looks each id up in the full list.
    """
    names = zone_names_by_id(aws)
    unknown = [az_id for az_id in az_ids if az_id not in names]
    if unknown:
        raise FixtureError(
            f"availability zone id {', '.join(unknown)} not found in {aws.region}; "
            f"its zone ids are {', '.join(sorted(names))}"
        )
    return [(az_id, names[az_id]) for az_id in az_ids]


def carve_subnets(cidr: str, count: int) -> list[str]:
    """Split a VPC CIDR into `count` subnets: /24s when they fit, else the largest equal blocks."""
    network = ipaddress.IPv4Network(cidr)
    bits_needed = (count - 1).bit_length()
    prefix = max(24, network.prefixlen + bits_needed)
    # AWS rejects subnets smaller than /28.
    if prefix > 28:
        raise FixtureError(
            f"VPC CIDR {cidr} is too small for {count} subnets of at least /28: "
            "use a larger --cidr or fewer --az-ids"
        )
    blocks = itertools.islice(network.subnets(new_prefix=prefix), count)
    return [str(block) for block in blocks]


def create_subnets(
    aws: Aws,
    vpc_id: str,
    subnet_cidrs: list[str],
    zones: list[tuple[str, str]],
    name: str,
    fixture: str,
) -> list[dict[str, str]]:
    subnets = []
    for (az_id, az_name), subnet_cidr in zip(zones, subnet_cidrs):
        tags = {"Name": f"{name}-{az_id}", FIXTURE_TAG_KEY: fixture}
        subnet = call(
            "CreateSubnet",
            aws.ec2.create_subnet,
            VpcId=vpc_id,
            CidrBlock=subnet_cidr,
            AvailabilityZoneId=az_id,
            TagSpecifications=tag_specification("subnet", tags),
        )["Subnet"]
        subnets.append(
            {
                "id": subnet["SubnetId"],
                "az": subnet.get("AvailabilityZone", az_name),
                "az_id": subnet.get("AvailabilityZoneId", az_id),
                "cidr": subnet["CidrBlock"],
            }
        )
    return subnets


def set_vpc_attribute(aws: Aws, vpc_id: str, attribute: str, value: bool) -> None:
    # ModifyVpcAttribute accepts one attribute per call.
    params = {"VpcId": vpc_id, attribute: {"Value": value}}
    call(f"ModifyVpcAttribute {attribute}", aws.ec2.modify_vpc_attribute, **params)


def read_vpc_attribute(aws: Aws, vpc_id: str, attribute: str) -> bool:
    # DescribeVpcAttribute names the attribute in lower camel case and returns it in upper.
    request_name = attribute[0].lower() + attribute[1:]
    response = call(
        f"DescribeVpcAttribute {request_name}",
        aws.ec2.describe_vpc_attribute,
        VpcId=vpc_id,
        Attribute=request_name,
    )
    return bool(response[attribute]["Value"])


def main_route_table_id(aws: Aws, vpc_id: str) -> str | None:
    response = call(
        "DescribeRouteTables",
        aws.ec2.describe_route_tables,
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "association.main", "Values": ["true"]},
        ],
    )
    tables = response["RouteTables"]
    return tables[0]["RouteTableId"] if tables else None


def create_vpc(args: argparse.Namespace, aws: Aws) -> dict[str, Any]:
    """Create a consumer VPC with one subnet per zone id and a route table over them."""
    az_ids = [az_id.strip() for az_id in args.az_ids.split(",") if az_id.strip()]
    if not az_ids:
        raise FixtureError("--az-ids is empty: give one or more zone ids, such as use1-az1")
    if len(set(az_ids)) != len(az_ids):
        raise FixtureError(f"--az-ids lists a zone id twice: {args.az_ids}")
    # Checked before any resource exists, so a bad id or CIDR leaves nothing behind.
    zones = resolve_az_ids(aws, az_ids)
    subnet_cidrs = carve_subnets(args.cidr, len(zones))
    name = args.name or "linkplan-test-vpc"
    fixture = "vpc"
    name_tags = {"Name": name, FIXTURE_TAG_KEY: fixture}

    vpc = call(
        "CreateVpc",
        aws.ec2.create_vpc,
        CidrBlock=args.cidr,
        TagSpecifications=tag_specification("vpc", name_tags),
    )["Vpc"]
    vpc_id = vpc["VpcId"]
    cidrs = [vpc["CidrBlock"]]
    if args.secondary_cidr:
        association = call(
            "AssociateVpcCidrBlock",
            aws.ec2.associate_vpc_cidr_block,
            VpcId=vpc_id,
            CidrBlock=args.secondary_cidr,
        )
        cidrs.append(association["CidrBlockAssociation"]["CidrBlock"])

    # Both attributes are always set, so the result does not depend on moto's defaults. The
    # defaults match those of a new non-default VPC on AWS.
    set_vpc_attribute(aws, vpc_id, "EnableDnsSupport", args.dns_support)
    set_vpc_attribute(aws, vpc_id, "EnableDnsHostnames", args.dns_hostnames)

    subnets = create_subnets(aws, vpc_id, subnet_cidrs, zones, name, fixture)

    route_table_id = call(
        "CreateRouteTable",
        aws.ec2.create_route_table,
        VpcId=vpc_id,
        TagSpecifications=tag_specification("route-table", name_tags),
    )["RouteTable"]["RouteTableId"]
    for subnet in subnets:
        call(
            "AssociateRouteTable",
            aws.ec2.associate_route_table,
            RouteTableId=route_table_id,
            SubnetId=subnet["id"],
        )

    internet_gateway_id = None
    if args.internet_gateway:
        internet_gateway_id = call(
            "CreateInternetGateway",
            aws.ec2.create_internet_gateway,
            TagSpecifications=tag_specification("internet-gateway", name_tags),
        )["InternetGateway"]["InternetGatewayId"]
        call(
            "AttachInternetGateway",
            aws.ec2.attach_internet_gateway,
            InternetGatewayId=internet_gateway_id,
            VpcId=vpc_id,
        )
        call(
            "CreateRoute",
            aws.ec2.create_route,
            RouteTableId=route_table_id,
            DestinationCidrBlock="0.0.0.0/0",
            GatewayId=internet_gateway_id,
        )

    return {
        "vpc_id": vpc_id,
        "region": aws.region,
        "name": name,
        "cidrs": cidrs,
        "subnet_ids": [subnet["id"] for subnet in subnets],
        "subnets": subnets,
        "route_table_ids": [route_table_id],
        "main_route_table_id": main_route_table_id(aws, vpc_id),
        "internet_gateway_id": internet_gateway_id,
        "dns_support": read_vpc_attribute(aws, vpc_id, "EnableDnsSupport"),
        "dns_hostnames": read_vpc_attribute(aws, vpc_id, "EnableDnsHostnames"),
    }


def provider_service_configurations(aws: Aws) -> dict[str, dict[str, Any]]:
    """Return the endpoint service configurations made by an earlier provider-side run, by host."""
    # moto 5.2.5 ignores Filters on this call, so the tags are matched here.
    found: dict[str, dict[str, Any]] = {}
    params: dict[str, Any] = {}
    while True:
        response = call(
            "DescribeVpcEndpointServiceConfigurations",
            aws.ec2.describe_vpc_endpoint_service_configurations,
            **params,
        )
        for configuration in response["ServiceConfigurations"]:
            tags = tags_of(configuration)
            host = tags.get("Name")
            if tags.get(FIXTURE_TAG_KEY) == "provider-side" and host in PROVIDER_HOSTS:
                found.setdefault(host, configuration)
        if not response.get("NextToken"):
            return found
        params["NextToken"] = response["NextToken"]


def find_provider_vpc(aws: Aws) -> str | None:
    response = call(
        "DescribeVpcs",
        aws.ec2.describe_vpcs,
        Filters=[{"Name": f"tag:{FIXTURE_TAG_KEY}", "Values": ["provider-side"]}],
    )
    vpcs = sorted(response["Vpcs"], key=lambda vpc: vpc["VpcId"])
    return vpcs[0]["VpcId"] if vpcs else None


def provider_subnet_ids(aws: Aws, zones: list[tuple[str, str]]) -> tuple[str, list[str]]:
    """Return the provider VPC id and its subnet ids, creating the VPC and subnets if missing."""
    vpc_id = find_provider_vpc(aws)
    if vpc_id is None:
        tags = {"Name": PROVIDER_VPC_NAME, FIXTURE_TAG_KEY: "provider-side"}
        vpc_id = call(
            "CreateVpc",
            aws.ec2.create_vpc,
            CidrBlock=PROVIDER_CIDR,
            TagSpecifications=tag_specification("vpc", tags),
        )["Vpc"]["VpcId"]
        subnet_cidrs = carve_subnets(PROVIDER_CIDR, len(zones))
        subnets = create_subnets(
            aws, vpc_id, subnet_cidrs, zones, PROVIDER_VPC_NAME, "provider-side"
        )
        return vpc_id, [subnet["id"] for subnet in subnets]

    response = call(
        "DescribeSubnets",
        aws.ec2.describe_subnets,
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}],
    )
    requested_az_ids = {az_id for az_id, _ in zones}
    subnet_ids = [
        subnet["SubnetId"]
        for subnet in response["Subnets"]
        if subnet.get("AvailabilityZoneId") in requested_az_ids
    ]
    if not subnet_ids:
        raise FixtureError(
            f"provider VPC {vpc_id} has no subnet in {', '.join(sorted(requested_az_ids))}: "
            "run the reset subcommand and then provider-side again"
        )
    return vpc_id, subnet_ids


def create_provider_service(aws: Aws, host: str, subnet_ids: list[str]) -> dict[str, Any]:
    """Create one network load balancer and the endpoint service in front of it."""
    tags = {"Name": host, FIXTURE_TAG_KEY: "provider-side"}
    load_balancer = call(
        "CreateLoadBalancer",
        aws.elbv2.create_load_balancer,
        Name=f"{PROVIDER_VPC_NAME}-{host}",
        Subnets=subnet_ids,
        Type="network",
        Scheme="internal",
        Tags=[{"Key": key, "Value": value} for key, value in tags.items()],
    )["LoadBalancers"][0]
    return call(
        "CreateVpcEndpointServiceConfiguration",
        aws.ec2.create_vpc_endpoint_service_configuration,
        NetworkLoadBalancerArns=[load_balancer["LoadBalancerArn"]],
        AcceptanceRequired=False,
        TagSpecifications=tag_specification("vpc-endpoint-service", tags),
    )["ServiceConfiguration"]


def provider_side(args: argparse.Namespace, aws: Aws) -> dict[str, Any]:
    """Stand up the provider VPC, load balancers and endpoint services, reusing earlier ones."""
    if args.az_ids:
        az_ids = [az_id.strip() for az_id in args.az_ids.split(",") if az_id.strip()]
    elif aws.region in PROVIDER_AZ_IDS:
        az_ids = list(PROVIDER_AZ_IDS[aws.region])
    else:
        az_ids = sorted(zone_names_by_id(aws))
    zones = resolve_az_ids(aws, az_ids)
    zone_ids_by_name = {name: az_id for az_id, name in zone_names_by_id(aws).items()}

    configurations = provider_service_configurations(aws)
    missing = [host for host in PROVIDER_HOSTS if host not in configurations]
    if missing:
        vpc_id, subnet_ids = provider_subnet_ids(aws, zones)
        for host in missing:
            configurations[host] = create_provider_service(aws, host, subnet_ids)
    else:
        vpc_id = find_provider_vpc(aws)
        if vpc_id is None:
            raise FixtureError(
                f"the provider endpoint services exist but no VPC tagged "
                f"{FIXTURE_TAG_KEY}=provider-side does: run the reset subcommand and then "
                "provider-side again"
            )

    availability_zones = sorted(
        {
            zone
            for configuration in configurations.values()
            for zone in configuration["AvailabilityZones"]
        }
    )
    return {
        "region": aws.region,
        "services": {host: configurations[host]["ServiceName"] for host in PROVIDER_HOSTS},
        "service_ids": {host: configurations[host]["ServiceId"] for host in PROVIDER_HOSTS},
        "provider_vpc_id": vpc_id,
        "availability_zones": availability_zones,
        "az_ids": sorted(zone_ids_by_name.get(zone, zone) for zone in availability_zones),
    }


def reset(endpoint: str) -> dict[str, Any]:
    """Delete every resource on the moto server, in all regions."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST", data=b"")
    # An empty ProxyHandler stops urllib from sending the request to an environment proxy.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            response.read()
    except (urllib.error.URLError, OSError) as error:
        raise FixtureError(
            f"POST {endpoint}/moto-api/reset failed: {error} "
            "(is the moto server running? scripts/local-aws status shows it)"
        ) from None
    return {"reset": True, "endpoint": endpoint}


def ipv4_network(text: str) -> str:
    try:
        return str(ipaddress.IPv4Network(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"invalid IPv4 CIDR {text!r}: {error}") from None


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value == "true":
        return True
    if value == "false":
        return False
    raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected true or false")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="local_aws.py",
        description="Create AWS fixtures on a local moto server and print them as JSON.",
    )
    parser.add_argument(
        "--endpoint-url",
        help="moto server URL on 127.0.0.1, localhost or ::1 (default: $AWS_ENDPOINT_URL)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    provider = commands.add_parser(
        "provider-side",
        help="create the Trend Micro side: a provider VPC, NLBs and four endpoint services",
    )
    provider.add_argument("--region", default="us-east-1", help="AWS region (default: us-east-1)")
    provider.add_argument(
        "--az-ids",
        help="comma-separated zone ids of the services "
        "(default: use1-az1,use1-az2,use1-az4 in us-east-1, else every zone of the region)",
    )

    vpc = commands.add_parser("vpc", help="create a consumer VPC with one subnet per zone id")
    vpc.add_argument("--region", required=True, help="AWS region, such as us-east-1")
    vpc.add_argument(
        "--cidr", required=True, type=ipv4_network, help="primary IPv4 CIDR, /16 to /28"
    )
    vpc.add_argument(
        "--az-ids",
        required=True,
        help="comma-separated zone ids, one subnet each, such as use1-az1,use1-az2",
    )
    vpc.add_argument(
        "--secondary-cidr",
        type=ipv4_network,
        help="an IPv4 CIDR to associate as well; it gets no subnets",
    )
    vpc.add_argument(
        "--dns-hostnames",
        type=parse_bool,
        default=False,
        metavar="true|false",
        help="enableDnsHostnames (default: false)",
    )
    vpc.add_argument(
        "--dns-support",
        type=parse_bool,
        default=True,
        metavar="true|false",
        help="enableDnsSupport (default: true)",
    )
    vpc.add_argument(
        "--internet-gateway",
        action="store_true",
        help="attach an internet gateway and route 0.0.0.0/0 to it",
    )
    vpc.add_argument("--name", help="Name tag of the VPC; subnets get NAME-ZONEID")

    commands.add_parser("reset", help="delete every resource on the moto server")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    endpoint = loopback_endpoint(args.endpoint_url)
    isolate_environment()
    try:
        if args.command == "reset":
            result = reset(endpoint)
        elif args.command == "provider-side":
            result = provider_side(args, Aws(endpoint, args.region))
        else:
            result = create_vpc(args, Aws(endpoint, args.region))
    except FixtureError as error:
        print(f"local_aws.py: {args.command}: {error}", file=sys.stderr)
        return EXIT_FAILURE
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
